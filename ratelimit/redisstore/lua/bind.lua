
local c = redis.call('SCARD', KEYS[1])
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return {1, c} end
if c < tonumber(ARGV[2]) then
  redis.call('SADD', KEYS[1], ARGV[1])
  return {1, c + 1}
end
return {0, c}
