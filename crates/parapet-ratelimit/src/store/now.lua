-- parapet: the time every script decides with, in microseconds. It comes from the server
-- (TIME), never from the caller, so instances with skewed clocks agree; ARGV[2] may carry a
-- test clock's time instead (differential tests only). Prepended to gcra.lua and mark.lua.
if redis.replicate_commands then redis.replicate_commands() end
-- `ttl_pad` (ms) is added to every key's expiry. Redis expires keys on its own real clock,
-- which a test clock does not follow: a test that holds its clock still while real time
-- passes (a loaded machine) would see Redis drop a state the test clock says is live. So
-- under a test clock keys outlive their states by ten minutes, longer than any test, and
-- expiry is decided by the stored numbers alone, as it always is here: a key that outlives
-- its state changes no decision (every read compares the stored end with `now`).
local now
local ttl_pad = 0
if ARGV[2] ~= '' then
  now = tonumber(ARGV[2])
  ttl_pad = 600000
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
