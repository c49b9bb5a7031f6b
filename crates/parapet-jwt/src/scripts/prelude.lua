-- Shared by every revocation script: Redis's clock in ms, and ms as text.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function ms(n)
  return string.format('%.0f', n)
end
