-- KEYS[1] a user's index. ARGV: session key base.
-- Reply: {now, then per session: handle, created, seen, expires, ip, user agent}.
local now = now_ms()
local base = ARGV[1]
prune(KEYS[1], base, now)
local out = {tostring(now)}
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local key = base .. ':' .. m
  local meta = redis.call('HMGET', key, 'm:created', 'm:seen', 'm:ip', 'm:ua')
  out[#out + 1] = m
  out[#out + 1] = meta[1] or '0'
  out[#out + 1] = meta[2] or '0'
  out[#out + 1] = tostring(now + redis.call('PTTL', key))
  out[#out + 1] = meta[3] or ''
  out[#out + 1] = meta[4] or ''
end
return out
