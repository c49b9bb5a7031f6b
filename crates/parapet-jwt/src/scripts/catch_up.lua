-- KEYS[1] the log
-- ARGV[1] the count n of the last change this instance has (the `n` of its id `<n>-0`),
-- ARGV[2] most entries
-- Returns {'1'} when changes after it may be missing from the log (trimmed, or the log
-- gone or begun anew), else {'0', id, change, id, change, ...}: the changes after it,
-- oldest first, which follow it without a hole.
local after = tonumber(ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'1'}
end
local entries = redis.call('XRANGE', KEYS[1], '(' .. after .. '-0', '+', 'COUNT', tonumber(ARGV[2]))
if #entries == 0 then
  if last_log_n(KEYS[1]) ~= after then
    return {'1'}
  end
  return {'0'}
end
if tonumber(string.match(entries[1][1], '^(%d+)')) ~= after + 1 then
  return {'1'}
end
local out = {'0'}
for _, entry in ipairs(entries) do
  out[#out + 1] = entry[1]
  out[#out + 1] = entry[2][2]
end
return out
