-- KEYS[1] session, KEYS[2] its user's index.
local user = redis.call('HEXISTS', KEYS[1], 'm:user') == 1
redis.call('DEL', KEYS[1])
if user then
  redis.call('ZREM', KEYS[2], string.sub(KEYS[1], -32))
end
return 1
