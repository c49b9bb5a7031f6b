-- KEYS[1] the log
-- ARGV[1] the number n of the last change this instance holds without a hole (its id is
-- `<n>-0`), ARGV[2] most entries
-- Returns {'0', id, change, id, change, ...}: the changes after it, oldest first, which
-- follow it without a hole (none when there is nothing new); {'1'} when some of them are no
-- longer in the log (trimmed); {'2'} when the log went backwards or is gone: Redis lost
-- changes it had (a restart from an older snapshot, a failover to a replica that lagged,
-- the key evicted or deleted).
local after = tonumber(ARGV[1])
local last = last_log_n(KEYS[1])
if last < after then
  return {'2'}
end
if last == after then
  return {'0'}
end
local entries = redis.call('XRANGE', KEYS[1], '(' .. after .. '-0', '+', 'COUNT', tonumber(ARGV[2]))
if #entries == 0 or tonumber(string.match(entries[1][1], '^(%d+)')) ~= after + 1 then
  return {'1'}
end
local out = {'0'}
for _, entry in ipairs(entries) do
  out[#out + 1] = entry[1]
  out[#out + 1] = entry[2][2]
end
return out
