-- Stores one variant of a cached resource.
-- KEYS[1]: the resource's hash.
-- ARGV: vary names, variant field, encoded response, TTL (ms), most variants, the channel,
-- the announcement (the storing instance and the canonical key).
-- Fields: 'v' (the Vary names), 'd<tag>' (a variant), 'u<tag>' (its count of hits),
-- 's<tag>' (when it was stored, in the resource's count of stores 'n').
local spec = redis.call('HGET', KEYS[1], 'v')
-- Another instance may hold an older copy in memory only of what this store replaces.
local replaces = redis.call('HEXISTS', KEYS[1], ARGV[2]) == 1
if spec and spec ~= ARGV[1] then
  -- The Vary names changed: variants stored under the old names select nothing now.
  redis.call('DEL', KEYS[1])
  replaces = true
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
local most = math.max(1, tonumber(ARGV[5]))
-- Every few rounds of the cap the counts are halved, so that old uses fade and a burst of
-- hits once on junk variants does not pin them.
local n = tonumber(redis.call('HGET', KEYS[1], 'n'))
if n % (4 * most) == 0 then
  for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
    if string.sub(field, 1, 1) == 'u' then
      local uses = tonumber(redis.call('HGET', KEYS[1], field))
      if uses > 1 then
        redis.call('HSET', KEYS[1], field, math.floor(uses / 2))
      else
        redis.call('HDEL', KEYS[1], field)
      end
    end
  end
end
local excess = #others + 1 - most
if excess > 0 then
  -- Past the cap, the least used variants leave (never the one just stored), so that junk
  -- values of a Vary'd field go before the variants clients use; the first stored among
  -- equals.
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
-- A replacement is announced in the same script: every other instance's memory tier drops
-- its older copy (the next hit there reads this one from Redis).
if replaces then
  redis.call('PUBLISH', ARGV[6], ARGV[7])
end
return 1
