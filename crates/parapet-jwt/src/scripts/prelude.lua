-- Shared by every revocation script: Redis's clock in ms, ms as text, and raising the
-- global epoch.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function ms(n)
  return string.format('%.0f', n)
end
-- Every token issued at or before `at` (ms) is refused from now on; kept for `retention`
-- ms after it, announced on `channel`. Epochs only move forward. Returns the epoch.
local function raise_epoch(key, at, retention, channel)
  local epoch = math.max(tonumber(redis.call('GET', key) or '0'), at)
  redis.call('SET', key, ms(epoch), 'PXAT', ms(epoch + retention))
  redis.call('PUBLISH', channel, 'g' .. ms(epoch))
  return epoch
end
