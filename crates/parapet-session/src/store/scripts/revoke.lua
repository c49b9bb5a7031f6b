-- KEYS[1] a user's index. ARGV: session key base, mode ('one', 'all', 'except'), handle.
-- Reply: sessions ended.
local base, mode, handle = ARGV[1], ARGV[2], ARGV[3]
local ended = 0
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local hit = mode == 'all' or (mode == 'one' and m == handle) or (mode == 'except' and m ~= handle)
  if hit then
    ended = ended + redis.call('DEL', base .. ':' .. m)
    redis.call('ZREM', KEYS[1], m)
  end
end
if redis.call('ZCARD', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[1])
end
return ended
