-- KEYS[1] session. ARGV: idle ms. Moves the idle expiry (never past the absolute one).
-- Reply: 1 moved, 0 gone.
local now = now_ms()
local m = meta(KEYS[1])
if not is_live(m) then
  return 0
end
redis.call('HSET', KEYS[1], 'm:seen', now)
redis.call('PEXPIREAT', KEYS[1], math.min(now + tonumber(ARGV[1]), tonumber(m[1])))
return 1
