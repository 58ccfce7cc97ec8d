
local now = tonumber(ARGV[1])
local burst, cost, iv = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local base = now
local cur = redis.call('GET', KEYS[1])
if cur then base = math.max(tonumber(cur), now) end
local nxt = base + cost * iv
if cost < 0 then nxt = math.max(base + math.max(cost, -burst) * iv, now) end
if cost < 0 or nxt - now <= burst * iv then
  redis.call('SET', KEYS[1], string.format('%.0f', nxt), 'PX', math.max(1, math.ceil((nxt - now) / 1000)))
  return {1, 1, nxt, 0}
end
if ARGV[7] % 2 == 1 then return {1, 0, base, 0} end
return {0, 0, base, 0}
