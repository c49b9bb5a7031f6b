-- KEYS[1] session. ARGV: idle ms, max bytes, field name, increment.
-- Reply: {1, value}, {0} gone, {2} too large, {3} not an integer or overflow.
local now = now_ms()
local m = meta(KEYS[1])
if not is_live(m) then
  return {0}
end
local f = 'd:' .. ARGV[3]
local before = redis.call('HSTRLEN', KEYS[1], f)
local value = redis.pcall('HINCRBY', KEYS[1], f, ARGV[4])
if type(value) == 'table' and value.err then
  return {3}
end
local bytes = tonumber(m[3] or '0')
if before > 0 then
  bytes = bytes - #ARGV[3] - before
end
bytes = bytes + #ARGV[3] + redis.call('HSTRLEN', KEYS[1], f)
if bytes > tonumber(ARGV[2]) then
  if before > 0 then
    redis.call('HINCRBY', KEYS[1], f, -tonumber(ARGV[4]))
  else
    redis.call('HDEL', KEYS[1], f)
  end
  return {2}
end
redis.call('HSET', KEYS[1], 'm:bytes', bytes, 'm:seen', now)
redis.call('PEXPIREAT', KEYS[1], math.min(now + tonumber(ARGV[1]), tonumber(m[1])))
return {1, value}
