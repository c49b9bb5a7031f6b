-- Stores one variant of a cached resource.
-- KEYS[1]: the resource's hash.
-- ARGV: vary names, variant field, encoded response, TTL (ms), most variants, the channel,
-- the canonical key.
-- Fields: 'v' (the Vary names), 'd<tag>' (a variant), 'u<tag>' (its count of hits),
-- 's<tag>' (when it was stored, in the resource's count of stores 'n').
local spec = redis.call('HGET', KEYS[1], 'v')
if spec and spec ~= ARGV[1] then
  -- The Vary names changed: variants stored under the old names select nothing now.
  redis.call('DEL', KEYS[1])
end
local tag = string.sub(ARGV[2], 2)
redis.call('HSET', KEYS[1], 'v', ARGV[1], ARGV[2], ARGV[3],
  's' .. tag, redis.call('HINCRBY', KEYS[1], 'n', 1))
local others = {}
for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
  if string.sub(field, 1, 1) == 'd' and field ~= ARGV[2] then
    others[#others + 1] = field
  end
end
local excess = #others + 1 - tonumber(ARGV[5])
if excess > 0 then
  -- Past the cap, the least used variants leave (never the one just stored), so that junk
  -- values of a Vary'd field go before the variants clients use; the first stored among
  -- equals. Counts are not aged here
  -- (halving at each eviction would let twenty junk values wipe any count): they go with
  -- the key, which lives only as long as its longest-lived variant.
  local uses, stored = {}, {}
  for i, field in ipairs(others) do
    local t = string.sub(field, 2)
    local got = redis.call('HMGET', KEYS[1], 'u' .. t, 's' .. t)
    uses[i] = tonumber(got[1] or '0')
    stored[i] = tonumber(got[2] or '0')
  end
  local gone = {}
  for _ = 1, excess do
    local least
    for i = 1, #others do
      if not gone[i] and (least == nil or uses[i] < uses[least]
          or (uses[i] == uses[least] and stored[i] < stored[least])) then
        least = i
      end
    end
    gone[least] = true
    local t = string.sub(others[least], 2)
    redis.call('HDEL', KEYS[1], others[least], 'u' .. t, 's' .. t)
  end
end
-- The key lives as long as its longest-lived variant.
local ttl = tonumber(ARGV[4])
if redis.call('PTTL', KEYS[1]) < ttl then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
-- Announced like a removal, in the same script: every memory tier drops its older copy
-- (the next hit there reads this one from Redis).
redis.call('PUBLISH', ARGV[6], ARGV[7])
return 1
