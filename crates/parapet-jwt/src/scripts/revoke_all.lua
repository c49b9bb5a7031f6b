-- KEYS[1] global epoch (string, ms)
-- ARGV[1] retention ms (max token age + 2 leeway + 1), ARGV[2] channel
-- Returns the epoch.
local now = now_ms()
local epoch = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now)
redis.call('SET', KEYS[1], ms(epoch), 'PXAT', ms(epoch + tonumber(ARGV[1])))
redis.call('PUBLISH', ARGV[2], 'g' .. ms(epoch))
return epoch
