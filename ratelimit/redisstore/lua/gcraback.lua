local cur = redis.call('GET', KEYS[1])
if not cur or tonumber(cur) ~= tonumber(ARGV[1]) then return 0 end
local nxt = math.max(tonumber(ARGV[1]) - tonumber(ARGV[2]), tonumber(ARGV[3]))
redis.call('SET', KEYS[1], string.format('%.0f', nxt), 'PX', math.max(1, math.ceil((nxt - tonumber(ARGV[3])) / 1000)))
return 1
