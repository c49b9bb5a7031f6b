-- Stores one variant of a cached resource.
-- KEYS[1]: the resource's hash.
-- ARGV: vary names, variant field, encoded response, TTL (ms), most variants.
local spec = redis.call('HGET', KEYS[1], 'v')
if spec and spec ~= ARGV[1] then
  -- The Vary names changed: variants stored under the old names select nothing now.
  redis.call('DEL', KEYS[1])
end
redis.call('HSET', KEYS[1], 'v', ARGV[1], ARGV[2], ARGV[3])
if redis.call('HLEN', KEYS[1]) - 1 > tonumber(ARGV[5]) then
  for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
    if field ~= 'v' and field ~= ARGV[2] then
      redis.call('HDEL', KEYS[1], field)
    end
  end
end
-- The key lives as long as its longest-lived variant.
local ttl = tonumber(ARGV[4])
if redis.call('PTTL', KEYS[1]) < ttl then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return 1
