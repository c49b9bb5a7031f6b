-- KEYS[1] session. ARGV: idle ms. Moves the idle expiry (never past the absolute one).
-- Reply: 1 moved, 0 gone.
local now = now_ms()
local m = meta(KEYS[1])
if not is_live(m) then
  return 0
end
hset(KEYS[1], touch(KEYS[1], m, now, tonumber(ARGV[1]), 0, {}))
return 1
