-- parapet rate limit: a batch of decisions, each every policy of one request, all or
-- nothing, in one call. Decisions run in order, at one `now`. Mirrors src/limits/gcra.rs
-- line for line; property tests check that both decide alike.
--
-- KEYS, per decision: the subject's allow entry, its ban entry (each holds its end, us),
--           then one key per policy (all keys of a decision share the subject's {hash tag};
--           on Cluster every decision of a batch has the same tag)
-- ARGV[1]  the number of decisions      ARGV[2]  '' (use Redis TIME) or a test clock's now
-- ARGV[3..], per decision: the number of policies n, the cost (0 = read only), then per
--           policy three numbers:
--           the algorithm: 0 GCRA (key: the tat), 1 fixed window (key: `window end +
--           count`), 2 sliding window (key: a sorted set of the admitted cells' stamps);
--           the span: GCRA's interval, or the window's length (us);
--           the burst (the cells a window admits): negative for a shadow policy, decided
--           and reported, never refusing, charged only when the request fits in it
--
-- Reply: one array per decision: {status, retry_after_us, then per policy: remaining,
-- reset_after_us, over_us}; status 0 allowed, 1 limited, 2 banned (retry_after = ban's
-- remaining), 3 allow-listed. An error (out of memory, a key of another type) ends the
-- call: the decisions before it may have been applied, and every one gets the error.
--
-- Numbers stay below 2^53 (policies span at most ten years), so Lua doubles are exact.
-- (now.lua, prepended, sets `now`.)

local function floordiv(a, b)
  local q = math.floor(a / b)
  if q * b > a then
    q = q - 1
  elseif (q + 1) * b <= a then
    q = q + 1
  end
  return q
end

-- One decision: its keys follow KEYS[k], its n policies' numbers follow its cost, ARGV[a].
local function decide(k, n, a)
  local kinds = {}
  local sliding = false
  for i = 1, n do
    kinds[i] = tonumber(ARGV[a + 3 * i - 2])
    if kinds[i] == 2 then sliding = true end
  end

  -- One read for every string key of the subject: allow, ban, then the policies' numbers.
  local values
  if sliding then
    local strings = {KEYS[k + 1], KEYS[k + 2]}
    for i = 1, n do
      if kinds[i] ~= 2 then strings[#strings + 1] = KEYS[k + 2 + i] end
    end
    local read = redis.call('MGET', unpack(strings))
    values = {read[1], read[2]}
    local j = 3
    for i = 1, n do
      if kinds[i] ~= 2 then
        values[2 + i] = read[j]
        j = j + 1
      end
    end
  else
    values = redis.call('MGET', unpack(KEYS, k + 1, k + 2 + n))
  end
  local allow = values[1]
  if allow and tonumber(allow) > now then
    return {3, 0}
  end
  local ban = values[2]
  if ban and tonumber(ban) > now then
    return {2, tonumber(ban) - now}
  end

  local cost = tonumber(ARGV[a])
  local retry = 0
  local tats, news, overs, shadows, ends = {}, {}, {}, {}, {}
  for i = 1, n do
    local interval = tonumber(ARGV[a + 3 * i - 1])
    local burst = tonumber(ARGV[a + 3 * i])
    shadows[i] = burst < 0
    if shadows[i] then burst = -burst end
    if kinds[i] == 2 then
      -- The cells in the window (now - window, now]; refused until the kth oldest leaves
      -- (at most a window away, should the clock have stepped back). Read only: the cells
      -- that left are dropped when the key is next charged.
      local window = interval
      -- (string.format: Lua's own number-to-string keeps only 14 digits)
      local since = string.format('(%d', now - window)
      local count = redis.call('ZCOUNT', KEYS[k + 2 + i], since, '+inf')
      local over = 0
      if count + cost > burst then
        local kth = count + cost - burst
        over = window
        if kth <= count then
          local oldest = redis.call('ZRANGEBYSCORE', KEYS[k + 2 + i], since, '+inf', 'WITHSCORES', 'LIMIT', kth - 1, 1)
          over = tonumber(oldest[2]) + window - now
          if over > window then over = window end
          if over < 1 then over = 1 end
        end
      end
      if over > retry and not shadows[i] then retry = over end
      tats[i], news[i], overs[i] = count, count + cost, over
    elseif kinds[i] == 1 then
      local window = interval
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
    local interval = tonumber(ARGV[a + 3 * i - 1])
    local burst = math.abs(tonumber(ARGV[a + 3 * i]))
    -- A shadow policy that would refuse is not charged.
    local charged = allowed and not (shadows[i] and overs[i] > 0)
    local after = tats[i]
    if charged then after = news[i] end
    local reset = 0
    if kinds[i] == 2 then
      local key, window = KEYS[k + 2 + i], interval
      if charged and cost > 0 then
        -- Drop the cells that left, add one member per cell: `now.index`, with indexes above
        -- every cell still in the window (zero-padded, as rates stay below 10^5), so members
        -- are unique; the key lives until the newest cell leaves.
        redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
        local members = {}
        for j = 0, cost - 1 do
          members[#members + 1] = now
          members[#members + 1] = string.format('%d.%05d', now, tats[i] + j)
        end
        redis.call('ZADD', key, unpack(members))
        redis.call('PEXPIRE', key, floordiv(window + 999, 1000))
        reset = window
      elseif tats[i] > 0 then
        local newest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
        reset = tonumber(newest[2]) + window - now
      end
    elseif charged and cost > 0 then
      -- The key lives exactly as long as it differs from no key: ceil((tat - now) / 1ms).
      redis.call('SET', KEYS[k + 2 + i], news[i], 'PX', floordiv(news[i] - now + 999, 1000))
    end
    if kinds[i] == 2 then
      reply[#reply + 1] = burst - after
      reply[#reply + 1] = reset
    elseif kinds[i] == 1 then
      reply[#reply + 1] = burst - (after - ends[i])
      reply[#reply + 1] = ends[i] - now
    else
      reply[#reply + 1] = floordiv(interval * burst - (after - now), interval)
      reply[#reply + 1] = after - now
    end
    reply[#reply + 1] = overs[i]
  end
  return reply
end

local replies = {}
local k, p = 0, 3
for d = 1, tonumber(ARGV[1]) do
  local n = tonumber(ARGV[p])
  replies[d] = decide(k, n, p + 1)
  k, p = k + 2 + n, p + 2 + 3 * n
end
return replies
