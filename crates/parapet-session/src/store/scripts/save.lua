-- KEYS[1] session. ARGV: idle ms, max bytes, touch-after ms, changes from 4.
-- Reply: 1 written, 0 gone, 2 too large.
local now = now_ms()
local m = meta(KEYS[1])
if not is_live(m) then
  return 0
end
-- The expiry moves only once the bytes are known to fit: a refused write changes nothing.
local seen = {}
if now - tonumber(m[4] or '0') >= tonumber(ARGV[3]) then
  seen = {'m:seen', now}
end
if not apply(KEYS[1], 4, tonumber(ARGV[2]), tonumber(m[3] or '0'), seen) then
  return 2
end
if #seen > 0 then
  redis.call('PEXPIREAT', KEYS[1], math.min(now + tonumber(ARGV[1]), tonumber(m[1])))
end
return 1
