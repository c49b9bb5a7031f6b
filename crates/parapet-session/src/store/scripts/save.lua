-- KEYS[1] session. ARGV: idle ms, max bytes, changes from 3.
-- Reply: 1 written, 0 gone, 2 too large.
local now = now_ms()
if not live(KEYS[1]) then
  return 0
end
if not apply(KEYS[1], 3, tonumber(ARGV[2])) then
  return 2
end
touch(KEYS[1], now, tonumber(ARGV[1]))
return 1
