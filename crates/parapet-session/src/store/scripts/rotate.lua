-- KEYS[1] old session, KEYS[2] new session (same group), KEYS[3] the user's index,
-- KEYS[4] the group's anonymous index.
-- ARGV: idle ms, grace ms (0: the old id dies now), max bytes, changes from 4.
-- Reply: 1 moved, 0 gone, 2 too large, -2 new key taken.
local now = now_ms()
local m = meta(KEYS[1])
if not is_live(m) then
  return 0
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  return -2
end
if not apply(KEYS[1], 4, tonumber(ARGV[3]), tonumber(m[3] or '0'), {'m:seen', now}) then
  return 2
end
local abs = tonumber(m[1])
redis.call('RENAME', KEYS[1], KEYS[2])
redis.call('HSET', KEYS[2], 'm:rot', now)
redis.call('PEXPIREAT', KEYS[2], math.min(now + tonumber(ARGV[1]), abs))
local grace = tonumber(ARGV[2])
if grace > 0 then
  redis.call('HSET', KEYS[1], 'm:alias', string.sub(KEYS[2], -32))
  redis.call('PEXPIRE', KEYS[1], grace)
end
if redis.call('HEXISTS', KEYS[2], 'm:user') == 1 then
  local score = redis.call('ZSCORE', KEYS[3], string.sub(KEYS[1], -32)) or abs * 1000
  redis.call('ZREM', KEYS[3], string.sub(KEYS[1], -32))
  redis.call('ZADD', KEYS[3], score, string.sub(KEYS[2], -32))
  extend(KEYS[3], abs, now)
else
  -- An anonymous session keeps its place in the budget under its new id.
  local score = redis.call('ZSCORE', KEYS[4], string.sub(KEYS[1], -32))
  if score then
    redis.call('ZREM', KEYS[4], string.sub(KEYS[1], -32))
    redis.call('ZADD', KEYS[4], score, string.sub(KEYS[2], -32))
  end
end
return 1
