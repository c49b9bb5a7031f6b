-- Reads one variant of a cached resource that varies, and counts the use: when the
-- resource holds too many variants, the least used leave first (put.lua).
-- KEYS[1]: the resource's hash.  ARGV[1]: the variant's field.  ARGV[2]: its count field.
local got = redis.call('HMGET', KEYS[1], 'v', ARGV[1])
if got[2] then
  -- Best effort: a Redis out of memory (noeviction) refuses the count, not the hit.
  redis.pcall('HINCRBY', KEYS[1], ARGV[2], 1)
end
return got
