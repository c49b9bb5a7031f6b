-- KEYS[1] session. ARGV: idle ms, max bytes, changes from 3.
-- Reply: 1 written, 0 gone, 2 too large.
local now = now_ms()
local m = meta(KEYS[1])
if not is_live(m) then
  return 0
end
if not apply(KEYS[1], 3, tonumber(ARGV[2]), tonumber(m[3] or '0'), now) then
  return 2
end
redis.call('PEXPIREAT', KEYS[1], math.min(now + tonumber(ARGV[1]), tonumber(m[1])))
return 1
