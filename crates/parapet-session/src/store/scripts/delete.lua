-- KEYS[1] session, KEYS[2] its user's index, KEYS[3] its group's anonymous index.
local user = redis.call('HEXISTS', KEYS[1], 'm:user') == 1
redis.call('DEL', KEYS[1])
if user then
  redis.call('ZREM', KEYS[2], string.sub(KEYS[1], -32))
else
  redis.call('ZREM', KEYS[3], string.sub(KEYS[1], -32))
end
return 1
