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

-- {abs, alias, bytes, seen} of a session key, in one call. A live session has `abs` and
-- no `alias` (HMGET gives false for a missing field).
local function meta(key)
  return redis.call('HMGET', key, 'm:abs', 'm:alias', 'm:bytes', 'm:seen')
end

-- Marks a live session (meta `m`) used at `now`: the idle expiry moves, never past the
-- absolute one, when the last move is at least `after` ms old (a write is a use, but
-- moving the expiry on every write would cost two more commands each time). Returns the
-- fields to add to the caller's HSET.
local function touch(key, m, now, idle, after, writes)
  if now - tonumber(m[4] or '0') >= after then
    writes[#writes + 1] = 'm:seen'
    writes[#writes + 1] = now
    redis.call('PEXPIREAT', key, math.min(now + idle, tonumber(m[1])))
  end
  return writes
end

local function is_live(m)
  return m[1] and not m[2]
end

-- What a field costs beyond its name and value, for the byte limit: a stored field is a
-- hash entry, not just its bytes, so many tiny fields cannot pass the limit in real memory.
local FIELD = 64

-- HSET of a flat name/value list, in chunks that stay within Lua's stack for unpack.
local function hset(key, list)
  for first = 1, #list, 1000 do
    redis.call('HSET', key, unpack(list, first, math.min(first + 999, #list)))
  end
end

-- Applies the changes encoded in ARGV from index i (clear flag, set count, name/value
-- pairs, remove count, names) to `key`, whose data costs `bytes`, with `extra` fields
-- written in the same HSET; all or nothing: false when the data would pass `max` bytes,
-- and then nothing is written. A stored value is never empty (JSON), so HSTRLEN > 0 means
-- the field exists.
local function apply(key, i, max, bytes, extra)
  local clear = ARGV[i] == '1'
  if clear then
    bytes = 0
  end
  local j = i + 2
  local writes = {}
  for _ = 1, tonumber(ARGV[i + 1]) do
    local name, value = ARGV[j], ARGV[j + 1]
    local f = 'd:' .. name
    if not clear then
      local old = redis.call('HSTRLEN', key, f)
      if old > 0 then
        bytes = bytes - FIELD - #name - old
      end
    end
    bytes = bytes + FIELD + #name + #value
    writes[#writes + 1] = f
    writes[#writes + 1] = value
    j = j + 2
  end
  local removes = {}
  local count = tonumber(ARGV[j])
  j = j + 1
  for _ = 1, count do
    local name = ARGV[j]
    local f = 'd:' .. name
    if not clear then
      local old = redis.call('HSTRLEN', key, f)
      if old > 0 then
        bytes = bytes - FIELD - #name - old
      end
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
  for first = 1, #removes, 1000 do
    redis.call('HDEL', key, unpack(removes, first, math.min(first + 999, #removes)))
  end
  writes[#writes + 1] = 'm:bytes'
  writes[#writes + 1] = bytes
  for _, v in ipairs(extra) do
    writes[#writes + 1] = v
  end
  hset(key, writes)
  return true
end

-- Drops index members whose session has ended: by score (the absolute expiry, in µs)
-- first, then those ended earlier (idle, logout), checked one by one. The sessions of a
-- user share the index's hash tag, so these keys are in its Cluster slot.
local function prune(index, base, now)
  redis.call('ZREMRANGEBYSCORE', index, '-inf', now * 1000)
  for _, m in ipairs(redis.call('ZRANGE', index, 0, -1)) do
    if not is_live(meta(base .. ':' .. m)) then
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
