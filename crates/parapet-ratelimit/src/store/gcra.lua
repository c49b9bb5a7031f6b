-- parapet rate limit: GCRA over every policy of a request, all or nothing, in one call.
-- Mirrors src/gcra.rs line for line; property tests check that both decide alike.
--
-- KEYS[1]  the subject's allow entry    KEYS[2]  the subject's ban entry (each holds its end, us)
-- KEYS[3..] one tat key per policy (all keys share the subject's {hash tag})
-- ARGV[1]  cost (0 = read only)         ARGV[2]  '' (use Redis TIME) or a test clock's now
-- ARGV[3..] per policy: interval (us; negative: a fixed window of that length, whose key
--           holds `window end + count`, see src/limits/gcra.rs), burst (negative for a
--           shadow policy: decided and reported, never refusing, charged only when the
--           request fits in it)
--
-- Reply: {status, retry_after_us, then per policy: remaining, reset_after_us, over_us}
-- status 0 allowed, 1 limited, 2 banned (retry_after = ban's remaining), 3 allow-listed.
--
-- Numbers stay below 2^53 (policies span at most ten years), so Lua doubles are exact.
-- (now.lua, prepended, sets `now`.)

-- One read for every key of the subject: allow, ban, then the policies' tats.
local values = redis.call('MGET', unpack(KEYS))
local allow = values[1]
if allow and tonumber(allow) > now then
  return {3, 0}
end
local ban = values[2]
if ban and tonumber(ban) > now then
  return {2, tonumber(ban) - now}
end

local function floordiv(a, b)
  local q = math.floor(a / b)
  if q * b > a then
    q = q - 1
  elseif (q + 1) * b <= a then
    q = q + 1
  end
  return q
end

local cost = tonumber(ARGV[1])
local n = #KEYS - 2
local retry = 0
local tats, news, overs, shadows, ends = {}, {}, {}, {}, {}
for i = 1, n do
  local interval = tonumber(ARGV[1 + 2 * i])
  local burst = tonumber(ARGV[2 + 2 * i])
  shadows[i] = burst < 0
  if shadows[i] then burst = -burst end
  if interval < 0 then
    local window = -interval
    local window_end = (floordiv(now, window) + 1) * window
    local count = 0
    local stored = values[2 + i]
    if stored then
      local s = tonumber(stored)
      local stored_end = floordiv(s, window) * window
      if stored_end >= window_end then count = s - stored_end end
    end
    local over = 0
    if count + cost > burst then over = window_end - now end
    if over > retry and not shadows[i] then retry = over end
    tats[i], news[i], overs[i], ends[i] = window_end + count, window_end + count + cost, over, window_end
  else
    local tat = now
    local stored = values[2 + i]
    if stored then
      local s = tonumber(stored)
      if s > now then tat = s end
      -- Never past now + B*T, which admission keeps it under: a clock that stepped back
      -- costs at most one window.
      if tat > now + interval * burst then tat = now + interval * burst end
    end
    local new_tat = tat + cost * interval
    local over = new_tat - now - interval * burst
    if over > retry and not shadows[i] then retry = over end
    tats[i], news[i], overs[i] = tat, new_tat, over
  end
end

local allowed = retry <= 0
local reply = {allowed and 0 or 1, retry}
for i = 1, n do
  local interval = tonumber(ARGV[1 + 2 * i])
  local burst = math.abs(tonumber(ARGV[2 + 2 * i]))
  -- A shadow policy that would refuse is not charged.
  local charged = allowed and not (shadows[i] and overs[i] > 0)
  local after = tats[i]
  if charged then after = news[i] end
  if charged and cost > 0 then
    -- The key lives exactly as long as it differs from no key: ceil((tat - now) / 1ms).
    redis.call('SET', KEYS[2 + i], news[i], 'PX', floordiv(news[i] - now + 999, 1000))
  end
  if interval < 0 then
    reply[#reply + 1] = burst - (after - ends[i])
    reply[#reply + 1] = ends[i] - now
  else
    reply[#reply + 1] = floordiv(interval * burst - (after - now), interval)
    reply[#reply + 1] = after - now
  end
  reply[#reply + 1] = overs[i]
end
return reply
