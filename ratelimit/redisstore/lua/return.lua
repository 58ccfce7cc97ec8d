
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local n = math.max(tonumber(v) - tonumber(ARGV[1]), 0)
redis.call('SET', KEYS[1], string.format('%.0f', n), 'KEEPTTL')
return n
