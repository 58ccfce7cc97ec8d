
local now = tonumber(ARGV[1])
local n = #KEYS
local pend, nexts, bases, oks, pttls, alw = {}, {}, {}, {}, {}, {}
local commit = 1
for i = 1, n do
  local b = 2 + (i - 1) * 6
  local kind = tonumber(ARGV[b])
  local limit = tonumber(ARGV[b + 1])
  local cost = tonumber(ARGV[b + 2])
  local iv = tonumber(ARGV[b + 3])
  local flags = tonumber(ARGV[b + 5])
  local shadow = flags % 2 == 1
  local always = flags >= 2
  local k = KEYS[i]
  local cur = pend[k]
  local exists = cur ~= nil
  local pttl = 0
  if cur == nil then
    local v = redis.call('GET', k)
    if v then
      cur = tonumber(v)
      exists = true
      if kind == 3 then pttl = redis.call('PTTL', k) end
    else
      cur = 0
    end
  end
  local nxt, base, ok = cur, cur, exists
  if kind == 1 then
    nxt = cur + cost
    ok = nxt <= limit
    if cost < 0 then nxt, ok = math.max(nxt, 0), true end
  elseif kind == 2 then
    base = math.max(cur, now)
    nxt = base + cost * iv
    ok = (nxt - now) <= limit * iv
    if cost < 0 then nxt, ok = math.max(base + math.max(cost, -limit) * iv, now), true end
  elseif kind == 4 then
    nxt = limit
    ok = true
  end
  local forced = always and kind == 1 and cost > 0
  if forced then base = nxt end
  if kind ~= 3 then
    if ok then pend[k] = nxt else pend[k] = base end
  end
  nexts[i], bases[i], oks[i], pttls[i], alw[i] = nxt, base, ok, pttl, always
  if (not ok) and (not shadow) and (not always) and (kind == 1 or kind == 2) then commit = 0 end
end
local res = {commit}
for i = 1, n do
  local b = 2 + (i - 1) * 6
  local kind = tonumber(ARGV[b])
  local ttl = tonumber(ARGV[b + 4])
  local v = bases[i]
  local cost = tonumber(ARGV[b + 2])
  local forced = alw[i] and kind == 1 and cost > 0
  if forced or ((commit == 1 or cost < 0 or alw[i]) and oks[i] and kind ~= 3) then
    v = nexts[i]
    local s = string.format('%.0f', v)
    if kind == 2 then
      redis.call('SET', KEYS[i], s, 'PX', math.max(1, math.ceil((v - now) / 1000)))
    elseif ttl > 0 then
      redis.call('SET', KEYS[i], s, 'PX', ttl)
    else
      redis.call('SET', KEYS[i], s)
    end
  end
  res[#res + 1] = oks[i] and 1 or 0
  res[#res + 1] = v
  res[#res + 1] = pttls[i]
end
return res
