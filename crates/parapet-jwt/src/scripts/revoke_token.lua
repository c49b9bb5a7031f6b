-- KEYS[1] revoked tokens (zset: member -> ms after which the token is dead anyway)
-- KEYS[2] the subject's revoked tokens still held (zset, the same scores), KEYS[3] the log
-- ARGV[1] member, ARGV[2] until ms, ARGV[3] most entries, ARGV[4] channel,
-- ARGV[5] most tokens per subject ('0' when the token has no subject)
-- Returns 1 (recorded), 0 (already dead), -1 (the set is full), -2 (the subject holds its
-- most): the caller widens to the user's or the global epoch.
local now = now_ms()
local until_ms = tonumber(ARGV[2])
if until_ms <= now then return 0 end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ms(now))
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], 'GT', ms(until_ms), ARGV[1])
else
  local per_subject = tonumber(ARGV[5])
  if per_subject > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ms(now))
    if redis.call('ZCARD', KEYS[2]) >= per_subject then
      return -2
    end
  end
  if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return -1 end
  redis.call('ZADD', KEYS[1], ms(until_ms), ARGV[1])
  if per_subject > 0 then
    redis.call('ZADD', KEYS[2], ms(until_ms), ARGV[1])
    local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
    redis.call('PEXPIREAT', KEYS[2], last[2])
  end
end
local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], top[2])
announce(KEYS[3], ARGV[4], 't' .. ms(until_ms) .. ' ' .. ARGV[1])
return 1
