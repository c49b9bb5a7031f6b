-- Records a purge by prefix or tag, and announces it in the same script (the fan-out), so
-- that every instance applies it now and any instance that resubscribes reads it back.
-- The purge's time is Redis's (one clock for every instance; each converts it to its own).
-- KEYS[1]: the hash of purge records.
-- ARGV: field, how ('h' or 's'), the records' lifetime (ms), the channel, the most records.
-- Writes after TIME replicate by their effects (the default from Redis 5; asked for on
-- older ones, where the call exists).
if redis.replicate_commands then
  redis.replicate_commands()
end
local now = redis.call('TIME')
local value = now[1] .. string.format('%06d', tonumber(now[2])) .. ':' .. ARGV[2]
-- At most ARGV[5] records: past it they collapse into the empty prefix (every path),
-- purging everything received before now; over-purging is safe.
if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[5]) then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'p:', value)
end
redis.call('HSET', KEYS[1], ARGV[1], value)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PUBLISH', ARGV[4], 'P' .. ARGV[1] .. '=' .. value)
return 1
