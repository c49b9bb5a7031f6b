-- parapet rate limit: give back what one admitted request was charged, for every policy of
-- its set: tat - cost * interval, and no key at all when that is not after now (the state
-- the subject would have had without the request). Mirrors MemoryStore::refund.
--
-- A sliding window's key (a sorted set) gives back its `cost` newest cells instead.
--
-- KEYS     one key per policy (all share the subject's {hash tag})
-- ARGV[1]  cost    ARGV[2]  '' (Redis TIME) or a test clock's now
-- ARGV[3..] per policy, what one cell moved its number by (us); 0 for a sliding window
-- (now.lua, prepended, sets `now`.)
local cost = tonumber(ARGV[1])
for i = 1, #KEYS do
  local step = tonumber(ARGV[2 + i])
  if step == 0 then
    redis.call('ZPOPMAX', KEYS[i], cost)
  else
    local stored = redis.call('GET', KEYS[i])
    if stored then
      local tat = tonumber(stored) - cost * step
      if tat > now then
        redis.call('SET', KEYS[i], tat, 'PX', math.floor((tat - now + 999) / 1000) + ttl_pad)
      else
        redis.call('DEL', KEYS[i])
      end
    end
  end
end
return 1
