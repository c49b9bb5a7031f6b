-- parapet rate limit: mark a subject as banned or allow-listed until now + duration.
-- The entry holds its end in microseconds of the same clock gcra.lua reads, and expires
-- with it (PX, rounded up), so bans and allow entries end exactly when decisions say so.
--
-- KEYS[1]  the entry    ARGV[1]  duration (us)    ARGV[2]  '' (Redis TIME) or a test clock's now
-- (now.lua, prepended, sets `now`.)
local duration = tonumber(ARGV[1])
redis.call('SET', KEYS[1], now + duration, 'PX', math.floor((duration + 999) / 1000))
return 1
