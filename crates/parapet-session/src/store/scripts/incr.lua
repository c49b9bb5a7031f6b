-- KEYS[1] session. ARGV: idle ms, max bytes, field name, increment, touch-after ms.
-- Reply: {1, value as text}, {0} gone, {2} too large, {3} not an integer or overflow.
-- Values stay text end to end: a Lua number is a double, exact only to 2^53.
local now = now_ms()
local m = meta(KEYS[1])
if not is_live(m) then
  return {'0'}
end
local f = 'd:' .. ARGV[3]
local old = redis.call('HGET', KEYS[1], f)
local done = redis.pcall('HINCRBY', KEYS[1], f, ARGV[4])
if type(done) == 'table' and done.err then
  return {'3'}
end
local value = redis.call('HGET', KEYS[1], f)
local bytes = tonumber(m[3] or '0')
if old then
  bytes = bytes - FIELD - #ARGV[3] - #old
end
bytes = bytes + FIELD + #ARGV[3] + #value
if bytes > tonumber(ARGV[2]) then
  if old then
    redis.call('HSET', KEYS[1], f, old)
  else
    redis.call('HDEL', KEYS[1], f)
  end
  return {'2'}
end
hset(KEYS[1], touch(KEYS[1], m, now, tonumber(ARGV[1]), tonumber(ARGV[5]), {'m:bytes', bytes}))
return {'1', value}
