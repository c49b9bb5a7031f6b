-- Removes every variant of a cached resource and announces it in the same script (the
-- fan-out), so that every instance's memory tier drops its copy.
-- KEYS[1]: the resource's hash.  ARGV[1]: the channel.  ARGV[2]: the canonical key.
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[1], ARGV[2])
return 1
