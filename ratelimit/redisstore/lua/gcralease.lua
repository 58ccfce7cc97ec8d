local now = tonumber(ARGV[1])
local burst, cost, iv, extra = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local base = now
local cur = redis.call('GET', KEYS[1])
if cur then base = math.max(tonumber(cur), now) end
local room = math.floor((now + burst * iv - base) / iv)
if cost > room then return {0, base, 0} end
local take = cost + math.min(extra, math.floor((room - cost) / 4))
local nxt = base + take * iv
redis.call('SET', KEYS[1], string.format('%.0f', nxt), 'PX', math.max(1, math.ceil((nxt - now) / 1000)))
return {1, nxt, take}
