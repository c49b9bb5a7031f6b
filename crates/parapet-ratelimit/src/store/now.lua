-- parapet: the time every script decides with, in microseconds. It comes from the server
-- (TIME), never from the caller, so instances with skewed clocks agree; ARGV[2] may carry a
-- test clock's time instead (differential tests only). Prepended to gcra.lua and mark.lua.
if redis.replicate_commands then redis.replicate_commands() end
local now
if ARGV[2] ~= '' then
  now = tonumber(ARGV[2])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
