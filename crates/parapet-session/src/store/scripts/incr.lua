-- KEYS[1] session. ARGV: idle ms, max bytes, field name, increment.
-- Reply: {1, value}, {0} gone, {2} too large, {3} not an integer or overflow.
local now = now_ms()
if not live(KEYS[1]) then
  return {0}
end
local f = 'd:' .. ARGV[3]
local before = redis.call('HSTRLEN', KEYS[1], f)
local existed = redis.call('HEXISTS', KEYS[1], f) == 1
local value = redis.pcall('HINCRBY', KEYS[1], f, ARGV[4])
if type(value) == 'table' and value.err then
  return {3}
end
local bytes = tonumber(redis.call('HGET', KEYS[1], 'm:bytes') or '0')
if existed then
  bytes = bytes - #ARGV[3] - before
end
bytes = bytes + #ARGV[3] + redis.call('HSTRLEN', KEYS[1], f)
if bytes > tonumber(ARGV[2]) then
  if existed then
    redis.call('HINCRBY', KEYS[1], f, -tonumber(ARGV[4]))
  else
    redis.call('HDEL', KEYS[1], f)
  end
  return {2}
end
redis.call('HSET', KEYS[1], 'm:bytes', bytes)
touch(KEYS[1], now, tonumber(ARGV[1]))
return {1, value}
