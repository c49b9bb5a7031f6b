-- KEYS[1] revoked tokens, KEYS[2] user epochs, KEYS[3] global epoch, KEYS[4] generation
-- ARGV[1] iat ms, ARGV[2] member ('' for none), ARGV[3] user ('' for none), ARGV[4] '1' when
-- a user is given, ARGV[5] '1' when an absent generation marker is trusted
-- Returns 1 when the token is revoked (or Redis lost what it knew).
if ARGV[5] ~= '1' and redis.call('EXISTS', KEYS[4]) == 0 then return 1 end
local iat = tonumber(ARGV[1])
if iat <= tonumber(redis.call('GET', KEYS[3]) or '0') then return 1 end
if ARGV[4] == '1' then
  local epoch = redis.call('ZSCORE', KEYS[2], ARGV[3])
  if epoch and iat <= tonumber(epoch) then return 1 end
end
if ARGV[2] ~= '' then
  local until_ms = redis.call('ZSCORE', KEYS[1], ARGV[2])
  if until_ms and tonumber(until_ms) > now_ms() then return 1 end
end
return 0
