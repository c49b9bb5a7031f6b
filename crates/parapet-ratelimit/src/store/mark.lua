-- parapet rate limit: mark a subject as banned or allow-listed until now + duration, and
-- announce the change in the same script (the fan-out), so every instance drops what it
-- cached about the subject. The entry holds its end in microseconds of the same clock
-- gcra.lua reads, and expires with it (PX, rounded up).
--
-- KEYS[1]  the entry    ARGV[1]  duration (us)    ARGV[2]  '' (Redis TIME) or a test clock's now
-- ARGV[3]  the announcement channel               ARGV[4]  the payload (the subject's tag)
-- (now.lua, prepended, sets `now`.)
local duration = tonumber(ARGV[1])
redis.call('SET', KEYS[1], now + duration, 'PX', math.floor((duration + 999) / 1000) + ttl_pad)
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
