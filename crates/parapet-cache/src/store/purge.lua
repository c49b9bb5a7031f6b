-- Records a purge by prefix or tag, and announces it in the same script (the fan-out), so
-- that every instance applies it now and any instance that resubscribes reads it back.
-- KEYS[1]: the hash of purge records.
-- ARGV: field, value, the records' lifetime (ms), the channel, the announcement, the
-- most records.
-- At most ARGV[6] records: past it they collapse into the empty prefix (every path),
-- purging everything received before now; over-purging is safe.
if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[6]) then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'p:', ARGV[2])
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1
