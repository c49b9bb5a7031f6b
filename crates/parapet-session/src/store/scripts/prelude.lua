-- Shared by every session script. Times are Redis TIME in ms since the epoch, so instances
-- with skewed clocks agree. Data fields are `d:<name>`; metadata fields are `m:<name>`:
-- created, rot (last rotation), seen (last touch), abs (absolute expiry), bytes (data
-- bytes: names plus values), user, ip, ua; a rotated id holds only `m:alias`.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Microseconds: index scores, so that sessions created in the same millisecond still
-- have an order (2^53 µs is 285 years: exact in a Lua number).
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

-- Applies the changes encoded in ARGV from index i (clear flag, set count, name/value
-- pairs, remove count, names) to `key`, all or nothing: false when the data would pass
-- `max` bytes, and then nothing is written.
local function apply(key, i, max)
  local clear = ARGV[i] == '1'
  local bytes = 0
  if not clear then
    bytes = tonumber(redis.call('HGET', key, 'm:bytes') or '0')
  end
  local j = i + 2
  local sets = {}
  for _ = 1, tonumber(ARGV[i + 1]) do
    local name, value = ARGV[j], ARGV[j + 1]
    local f = 'd:' .. name
    if not clear and redis.call('HEXISTS', key, f) == 1 then
      bytes = bytes - #name - redis.call('HSTRLEN', key, f)
    end
    bytes = bytes + #name + #value
    sets[#sets + 1] = f
    sets[#sets + 1] = value
    j = j + 2
  end
  local removes = {}
  local count = tonumber(ARGV[j])
  j = j + 1
  for _ = 1, count do
    local name = ARGV[j]
    local f = 'd:' .. name
    if not clear and redis.call('HEXISTS', key, f) == 1 then
      bytes = bytes - #name - redis.call('HSTRLEN', key, f)
    end
    removes[#removes + 1] = f
    j = j + 1
  end
  if bytes > max then
    return false
  end
  if clear then
    for _, f in ipairs(redis.call('HKEYS', key)) do
      if string.sub(f, 1, 2) == 'd:' then
        redis.call('HDEL', key, f)
      end
    end
  end
  for n = 1, #sets, 2 do
    redis.call('HSET', key, sets[n], sets[n + 1])
  end
  for _, f in ipairs(removes) do
    redis.call('HDEL', key, f)
  end
  redis.call('HSET', key, 'm:bytes', bytes)
  return true
end

-- Marks `key` used now: the idle expiry moves, never past the absolute one.
local function touch(key, now, idle)
  local abs = tonumber(redis.call('HGET', key, 'm:abs'))
  redis.call('HSET', key, 'm:seen', now)
  redis.call('PEXPIREAT', key, math.min(now + idle, abs))
end

-- A live session (not a rotation alias) at `key`.
local function live(key)
  return redis.call('EXISTS', key) == 1 and redis.call('HEXISTS', key, 'm:alias') == 0
end

-- Drops index members whose session has ended: by score (the absolute expiry, in µs) first, then
-- those ended earlier (idle, logout), checked one by one. The sessions of a user share the
-- index's hash tag, so these keys are in its Cluster slot.
local function prune(index, base, now)
  redis.call('ZREMRANGEBYSCORE', index, '-inf', now * 1000)
  for _, m in ipairs(redis.call('ZRANGE', index, 0, -1)) do
    if not live(base .. ':' .. m) then
      redis.call('ZREM', index, m)
    end
  end
end

-- The index lives as long as its longest-lived session.
local function extend(key, at, now)
  local ttl = redis.call('PTTL', key)
  if ttl < 0 or now + ttl < at then
    redis.call('PEXPIREAT', key, at)
  end
end
