-- KEYS[1] user epochs (zset: user -> epoch ms), KEYS[2] the log
-- ARGV[1] user, ARGV[2] retention ms (max token age + 2 leeway + 1), ARGV[3] most entries, ARGV[4] channel
-- Returns the epoch, or -1 (full).
local now = now_ms()
local max_age = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ms(now - max_age))
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) and not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return -1
end
redis.call('ZADD', KEYS[1], 'GT', ms(now), ARGV[1])
local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], ms(tonumber(top[2]) + max_age))
announce(KEYS[2], ARGV[4], 'u' .. ms(now) .. ' ' .. ARGV[1])
return now
