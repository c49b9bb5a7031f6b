-- KEYS[1] old session, KEYS[2] new session (same group), KEYS[3] the user's index.
-- ARGV: idle ms, grace ms (0: the old id dies now), max bytes, changes from 4.
-- Reply: 1 moved, 0 gone, 2 too large, -2 new key taken.
local now = now_ms()
if not live(KEYS[1]) then
  return 0
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  return -2
end
if not apply(KEYS[1], 4, tonumber(ARGV[3])) then
  return 2
end
redis.call('RENAME', KEYS[1], KEYS[2])
redis.call('HSET', KEYS[2], 'm:rot', now)
touch(KEYS[2], now, tonumber(ARGV[1]))
local grace = tonumber(ARGV[2])
if grace > 0 then
  redis.call('HSET', KEYS[1], 'm:alias', string.sub(KEYS[2], -32))
  redis.call('PEXPIRE', KEYS[1], grace)
end
if redis.call('HEXISTS', KEYS[2], 'm:user') == 1 then
  local abs = tonumber(redis.call('HGET', KEYS[2], 'm:abs'))
  local score = redis.call('ZSCORE', KEYS[3], string.sub(KEYS[1], -32)) or abs * 1000
  redis.call('ZREM', KEYS[3], string.sub(KEYS[1], -32))
  redis.call('ZADD', KEYS[3], score, string.sub(KEYS[2], -32))
  extend(KEYS[3], abs, now)
end
return 1
