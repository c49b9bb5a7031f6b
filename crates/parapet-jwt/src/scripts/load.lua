-- KEYS[1] revoked tokens, KEYS[2] user epochs, KEYS[3] global epoch
-- ARGV[1] max token age ms
-- Returns {global epoch, token count, member, until, ..., user, epoch, ...}: what is live.
local now = now_ms()
local out = { redis.call('GET', KEYS[3]) or '0' }
local tokens = redis.call('ZRANGE', KEYS[1], '(' .. ms(now), '+inf', 'BYSCORE', 'WITHSCORES')
out[2] = tostring(#tokens / 2)
for i = 1, #tokens do out[#out + 1] = tokens[i] end
local users = redis.call('ZRANGE', KEYS[2], '(' .. ms(now - tonumber(ARGV[1])), '+inf', 'BYSCORE', 'WITHSCORES')
for i = 1, #users do out[#out + 1] = users[i] end
return out
