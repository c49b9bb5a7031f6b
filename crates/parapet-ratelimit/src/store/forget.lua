-- parapet rate limit: delete a subject's entries (a reset, an unban, an unallow) and
-- announce it in the same script (the fan-out), so every instance drops what it cached.
--
-- KEYS     the entries (one subject: they share its {hash tag})
-- ARGV[1]  the announcement channel    ARGV[2]  the payload (the subject's tag)
redis.call('DEL', unpack(KEYS))
redis.call('PUBLISH', ARGV[1], ARGV[2])
return 1
