-- KEYS[1] revoked tokens (zset: member -> ms after which the token is dead anyway)
-- ARGV[1] member, ARGV[2] until ms, ARGV[3] most entries, ARGV[4] channel
-- Returns 1 (recorded), 0 (already dead), -1 (full).
local now = now_ms()
local until_ms = tonumber(ARGV[2])
if until_ms <= now then return 0 end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ms(now))
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) and not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return -1
end
redis.call('ZADD', KEYS[1], 'GT', ms(until_ms), ARGV[1])
local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], top[2])
redis.call('PUBLISH', ARGV[4], 't' .. ms(until_ms) .. ' ' .. ARGV[1])
return 1
