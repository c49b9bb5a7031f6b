-- Shared by every revocation script: Redis's clock in ms, ms as text, and raising the
-- global epoch.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function ms(n)
  return string.format('%.0f', n)
end
-- The last id given in the log (`<n>-0`, n counting changes from 1), 0 when there is none.
local function last_log_n(log)
  if redis.call('EXISTS', log) == 0 then
    return 0
  end
  local info = redis.call('XINFO', 'STREAM', log)
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then
      return tonumber(string.match(info[i + 1], '^(%d+)'))
    end
  end
  return 0
end
-- Records a change in the log (a stream of the last LOG_MAX changes, without expiry, from
-- which an instance that lost its subscription catches up) and announces it on `channel`.
-- Ids count the changes (`1-0`, `2-0`, …), so a reader can tell a change it missed from
-- one it has. The announcement is the change alone, as before the log existed.
local LOG_MAX = 100000
local function announce(log, channel, change)
  local id = (last_log_n(log) + 1) .. '-0'
  redis.call('XADD', log, 'MAXLEN', '~', LOG_MAX, id, 'c', change)
  redis.call('PUBLISH', channel, change)
end
-- Every token issued at or before `at` (ms) is refused from now on; kept for `retention`
-- ms after it, announced on `channel`. Epochs only move forward. Returns the epoch.
local function raise_epoch(key, at, retention, log, channel)
  local epoch = math.max(tonumber(redis.call('GET', key) or '0'), at)
  redis.call('SET', key, ms(epoch), 'PXAT', ms(epoch + retention))
  announce(log, channel, 'g' .. ms(epoch))
  return epoch
end
