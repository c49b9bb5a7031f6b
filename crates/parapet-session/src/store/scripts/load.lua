-- KEYS[1] session. ARGV: idle ms, touch-after ms.
-- Reply: nil when there is no live session; else {now, alias or '', name, value, ...}.
local now = now_ms()
local key = KEYS[1]
local alias = redis.call('HGET', key, 'm:alias')
if alias then
  -- A rotated id within its grace window: the session moved to a key of the same group
  -- (same hash tag), whose last 32 characters are the new digest.
  key = string.sub(key, 1, #key - 32) .. alias
end
local all = redis.call('HGETALL', key)
local seen
for i = 1, #all, 2 do
  if all[i] == 'm:seen' then
    seen = tonumber(all[i + 1])
  elseif all[i] == 'm:alias' then
    return false
  end
end
if not seen then
  return false
end
if now - seen >= tonumber(ARGV[2]) then
  touch(key, now, tonumber(ARGV[1]))
end
table.insert(all, 1, alias or '')
table.insert(all, 1, tostring(now))
return all
