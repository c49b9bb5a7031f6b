-- parapet rate limit: a batch of decisions, each every policy of one request, all or
-- nothing, in one call. Decisions run in order, at one `now`. Mirrors src/limits/gcra.rs
-- line for line; property tests check that both decide alike.
--
-- A decision's form is its keys and numbers; decisions of one form (a hot key's, asked
-- for together) are sent once, and each decision names its form.
-- KEYS, per form: the subject's allow entry, its ban entry (each holds its end, us),
--           then one key per policy (all keys of a decision share the subject's {hash tag};
--           on Cluster every decision of a batch has the same tag)
-- ARGV[1]  the number of decisions      ARGV[2]  '' (use Redis TIME) or a test clock's now
-- ARGV[3]  the number of forms F
-- ARGV[4..], per form: the number of policies n, the cost (0 = read only), then per
--           policy three numbers:
--           the algorithm: 0 GCRA (key: the tat), 1 fixed window (key: `window end +
--           count`), 2 sliding window (key: a sorted set of the admitted cells' stamps);
--           the span: GCRA's interval, or the window's length (us);
--           the burst (the cells a window admits): negative for a shadow policy, decided
--           and reported, never refusing, charged only when the request fits in it
--           then, when F is below the number of decisions, each decision's form (from 1)
--
-- Reply: one array per decision: {status, retry_after_us, then per policy: remaining,
-- reset_after_us, over_us}; status 0 allowed, 1 limited, 2 banned (retry_after = ban's
-- remaining), 3 allow-listed, -1 failed (a key of another type: this decision only).
-- A decision of one enforced GCRA policy, allowed or limited, is answered in short:
-- {4 x (its tat after the decision - now) + status}, from which the caller, knowing cost,
-- interval and burst, works out the rest (every integer of a reply costs Redis time); so is
-- an admitted decision of one enforced sliding window that adds cells: {4 x (the cells in
-- the window after it)}.
-- Out of memory ends the call with Redis's error (no decision could write).
--
-- Numbers stay below 2^53 (policies span at most ten years), so Lua doubles are exact.
-- (now.lua, prepended, sets `now`.)

-- Cost matters here: Redis serves nothing else while a script runs, and its CPU per
-- decision bounds a fleet's throughput. So each policy's numbers live in one scratch table
-- reused by every decision of the batch (rather than tables of their own per decision),
-- every argument is read once, and the string keys (allow, ban, GCRA and fixed-window
-- states) go through a table of the batch: each is read at most once per call (a hot key's
-- decisions in one batch make one MGET between them) and written once at the end, with the
-- expiry of its last state; a sliding window's sorted set is counted once per call and
-- written once at its end. Nothing else runs while the script does, so this decides
-- exactly as reading and writing each decision's keys in turn would.

-- Each string key's value in this call: a number, or false when the key does not exist.
local values = {}
-- Each sliding window's sorted set read in this call: `stored`, its cells in the window
-- when first read; `since`, the window's exclusive start (ZCOUNT's syntax); `span`;
-- `added`, the cells this call admits (all stamped `now`), and `cells`, their
-- score/member list, written when the call ends. A hot key's decisions in one batch make
-- one ZCOUNT and one write between them, not four commands each.
local windows = {}
-- The keys charged in this call (a set), written when the call ends.
local charged = {}

-- A stored state, or false for none. Every state this script writes is an integer below
-- 2^53; anything else (a value written by hand: not a number, a fraction, inf, nan, out of
-- range) counts as no state, so it can neither fail the call nor make a state without a
-- positive expiry, nor a short reply that is not a whole number.
local function number(v)
  local x = v and tonumber(v)
  if x and x == math.floor(x) and x > -9007199254740992 and x < 9007199254740992 then
    return x
  end
  return false
end

-- Reads into `values` those of `names` not read yet in this call, in one MGET.
local function load(names)
  local missing = {}
  for j = 1, #names do
    if values[names[j]] == nil then missing[#missing + 1] = names[j] end
  end
  if #missing == 0 then return end
  local read = redis.call('MGET', unpack(missing))
  for j = 1, #missing do
    -- (a key listed twice is read twice: the first answer stands)
    if values[missing[j]] == nil then values[missing[j]] = number(read[j]) end
  end
end

-- Charges a string key: its new state, written when the call ends.
local function charge(key, state)
  values[key] = state
  charged[key] = true
end

-- The sliding window `key` of `span` as this call sees it (read on first use). A key is
-- one policy's, and a policy's key names its span and burst (limits/policy.rs), so every
-- decision of the call that reaches the key agrees on `span`.
local function window(key, span)
  local w = windows[key]
  if w == nil then
    -- (string.format: Lua's own number-to-string keeps only 14 digits)
    local since = string.format('(%d', now - span)
    w = {stored = redis.call('ZCOUNT', key, since, '+inf'), since = since, span = span,
         added = 0, cells = {}}
    windows[key] = w
  end
  return w
end

-- Admits `cost` cells into window `w`, whose count before them is `count`: one member per
-- cell, `now.index`, with indexes above every cell still in the window (zero-padded, as
-- rates stay below 10^5), so members are unique; written when the call ends.
local function admit(w, count, cost)
  -- (the score as text made once: Redis formats a Lua number with %.17g, slowly)
  local cells, stamp = w.cells, w.stamp
  if stamp == nil then
    stamp = string.format('%d', now)
    w.stamp = stamp
  end
  for m = 0, cost - 1 do
    cells[#cells + 1] = stamp
    cells[#cells + 1] = string.format('%s.%05d', stamp, count + m)
  end
  w.added = w.added + cost
end

-- Until a window's newest cell leaves: a window from now if this call admitted one, else
-- from its newest stored cell (none: 0).
local function window_reset(key, w, count, span)
  if w.added > 0 then
    return span
  elseif count > 0 then
    local newest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
    return tonumber(newest[2]) + span - now
  end
  return 0
end

-- Until the kth oldest cell of window `w` leaves (at most a window away, should the clock
-- have stepped back; a cell this call admitted leaves a window from now).
local function window_over(key, w, kth, span)
  if kth > w.stored then
    return span
  end
  local oldest = redis.call('ZRANGEBYSCORE', key, w.since, '+inf', 'WITHSCORES', 'LIMIT', kth - 1, 1)
  local over = tonumber(oldest[2]) + span - now
  if over > span then over = span end
  if over < 1 then over = 1 end
  return over
end

-- The reply for a subject allow-listed or banned now, or nil: its entries follow KEYS[k],
-- read (with `more`, a key of the decision's, in the same MGET) unless read already.
local function marked(k, more)
  local ka, kb = KEYS[k + 1], KEYS[k + 2]
  if values[ka] == nil or values[kb] == nil or (more and values[more] == nil) then
    load({ka, kb, more})
  end
  local allow, ban = values[ka], values[kb]
  if allow and allow > now then
    return {3, 0}
  end
  if ban and ban > now then
    return {2, ban - now}
  end
  return nil
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

-- Per policy i, slots at 8 * (i - 1): 1 algorithm, 2 span, 3 burst, 4 shadow, 5 the state
-- before (tat, window end + count, or the sliding window's count), 6 the state if charged,
-- 7 over (us until the request would fit; <= 0 fits), 8 a fixed window's end.
local st = {}

-- One decision: its keys follow KEYS[k], its n policies' numbers follow its cost, ARGV[a].
local function decide(k, n, a)
  local cost = tonumber(ARGV[a])
  local sliding = false
  for i = 1, n do
    local o = 8 * (i - 1)
    local kind = tonumber(ARGV[a + 3 * i - 2])
    local burst = tonumber(ARGV[a + 3 * i])
    st[o + 1] = kind
    st[o + 2] = tonumber(ARGV[a + 3 * i - 1])
    st[o + 3] = math.abs(burst)
    st[o + 4] = burst < 0
    if kind == 2 then sliding = true end
  end

  -- One read for every string key of the subject not read yet: allow, ban, then the
  -- policies' numbers (a sliding window's key is a sorted set, read below).
  if sliding then
    local strings = {KEYS[k + 1], KEYS[k + 2]}
    for i = 1, n do
      if st[8 * i - 7] ~= 2 then strings[#strings + 1] = KEYS[k + 2 + i] end
    end
    load(strings)
  else
    load({unpack(KEYS, k + 1, k + 2 + n)})
  end
  local stop = marked(k)
  if stop then
    return stop
  end

  local retry = 0
  for i = 1, n do
    local o = 8 * (i - 1)
    local kind, span, burst = st[o + 1], st[o + 2], st[o + 3]
    local before, new, over
    if kind == 2 then
      -- The cells in the window (now - window, now], those this call admitted included;
      -- refused until the kth oldest leaves (at most a window away, should the clock have
      -- stepped back; a cell this call admitted leaves a window from now). Read only: the
      -- cells that left are dropped when the call that charges the key ends.
      local w = window(KEYS[k + 2 + i], span)
      local count = w.stored + w.added
      over = 0
      if count + cost > burst then
        over = window_over(KEYS[k + 2 + i], w, count + cost - burst, span)
      end
      before, new = count, count + cost
    elseif kind == 1 then
      local window_end = (floordiv(now, span) + 1) * span
      local count = 0
      local s = values[KEYS[k + 2 + i]]
      if s then
        local stored_end = floordiv(s, span) * span
        if stored_end >= window_end then count = s - stored_end end
      end
      over = 0
      if count + cost > burst then over = window_end - now end
      before, new = window_end + count, window_end + count + cost
      st[o + 8] = window_end
    else
      local tat = now
      local s = values[KEYS[k + 2 + i]]
      if s then
        if s > now then tat = s end
        -- Never past now + B*T, which admission keeps it under: a clock that stepped back
        -- costs at most one window.
        if tat > now + span * burst then tat = now + span * burst end
      end
      new = tat + cost * span
      over = new - now - span * burst
      before = tat
    end
    if over > retry and not st[o + 4] then retry = over end
    st[o + 5], st[o + 6], st[o + 7] = before, new, over
  end

  local allowed = retry <= 0
  local reply = {allowed and 0 or 1, retry}
  -- The keys this decision charges, applied once it cannot fail any more.
  local staged = {}
  for i = 1, n do
    local o = 8 * (i - 1)
    local kind, span, burst, over = st[o + 1], st[o + 2], st[o + 3], st[o + 7]
    -- A shadow policy that would refuse is not charged.
    local is_charged = allowed and not (st[o + 4] and over > 0)
    local after = st[o + 5]
    if is_charged then after = st[o + 6] end
    local key = KEYS[k + 2 + i]
    if kind == 2 then
      local reset
      if is_charged and cost > 0 then
        staged[#staged + 1] = i
        reset = span
      else
        reset = window_reset(key, windows[key], st[o + 5], span)
      end
      reply[3 * i] = burst - after
      reply[3 * i + 1] = reset
    else
      if is_charged and cost > 0 then
        staged[#staged + 1] = i
      end
      if kind == 1 then
        reply[3 * i] = burst - (after - st[o + 8])
        reply[3 * i + 1] = st[o + 8] - now
      else
        reply[3 * i] = floordiv(span * burst - (after - now), span)
        reply[3 * i + 1] = after - now
      end
    end
    reply[3 * i + 2] = over
  end
  for j = 1, #staged do
    local i = staged[j]
    local o = 8 * (i - 1)
    if st[o + 1] == 2 then
      admit(windows[KEYS[k + 2 + i]], st[o + 5], cost)
    else
      charge(KEYS[k + 2 + i], st[o + 6])
    end
  end
  return reply
end

-- A short reply's time stays below this, so that 4 x time + status is exact (2^50 us: 35
-- years; policies span at most ten).
local SHORT = 1125899906842624

-- The most common decision, one enforced GCRA policy, in fewer steps (the same numbers as
-- `decide`; the differential tests hold both to src/limits/gcra.rs, single and batched).
local function decide_one_gcra(k, a)
  local cost, interval, burst = tonumber(ARGV[a]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local kp = KEYS[k + 3]
  local stop = marked(k, kp)
  if stop then
    return stop
  end
  local s = values[kp]
  local limit = interval * burst
  local tat = now
  if s then
    if s > now then tat = s end
    if tat > now + limit then tat = now + limit end
  end
  local new = tat + cost * interval
  local over = new - now - limit
  if over > 0 then
    -- (short: retry = over, remaining and reset follow from tat - now; see the header)
    if tat - now < SHORT then return {4 * (tat - now) + 1} end
    return {1, over, floordiv(limit - (tat - now), interval), tat - now, over}
  end
  if cost > 0 then
    charge(kp, new)
  end
  if new - now < SHORT then return {4 * (new - now)} end
  return {0, 0, floordiv(limit - (new - now), interval), new - now, over}
end

-- One enforced sliding-window policy, in fewer steps (the same numbers as `decide`). An
-- admitted decision that adds cells is answered in short: {4 x (cells in the window after
-- it)}, the rest following from the burst and the window (see `batch::expand`).
local function decide_one_sliding(k, a)
  local cost, span, burst = tonumber(ARGV[a]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local key = KEYS[k + 3]
  local stop = marked(k)
  if stop then
    return stop
  end
  local w = window(key, span)
  local count = w.stored + w.added
  if count + cost > burst then
    local over = window_over(key, w, count + cost - burst, span)
    return {1, over, burst - count, window_reset(key, w, count, span), over}
  end
  if cost > 0 then
    admit(w, count, cost)
    return {4 * (count + cost)}
  end
  return {0, 0, burst - count, window_reset(key, w, count, span), 0}
end

-- Each form's first key (an offset in KEYS) and first number (its n, in ARGV).
local decisions, forms = tonumber(ARGV[1]), tonumber(ARGV[3])
local form_key, form_arg = {}, {}
local k, p = 0, 4
for f = 1, forms do
  form_key[f], form_arg[f] = k, p
  local n = tonumber(ARGV[p])
  k, p = k + 2 + n, p + 2 + 3 * n
end

local replies = {}
for d = 1, decisions do
  local f = d
  if forms < decisions then f = tonumber(ARGV[p + d - 1]) end
  local k, a = form_key[f], form_arg[f]
  if a == nil then return redis.error_reply('ERR rate-limit batch: no form ' .. tostring(f)) end
  local n = tonumber(ARGV[a])
  -- One policy with a positive (enforced) burst: GCRA (algorithm 0) or a sliding window (2).
  local one = n == 1 and tonumber(ARGV[a + 4]) > 0 and ARGV[a + 2]
  local ok, reply
  if one == '0' then
    ok, reply = pcall(decide_one_gcra, k, a + 1)
  elseif one == '2' then
    ok, reply = pcall(decide_one_sliding, k, a + 1)
  else
    ok, reply = pcall(decide, k, n, a + 1)
  end
  if not ok then
    -- Out of memory refuses every write: the whole call fails with Redis's own error.
    -- (Redis 7.0 raises a string, later versions a table with `err`.)
    local message = reply
    if type(reply) == 'table' then message = reply.err end
    if type(message) == 'string' and string.sub(message, 1, 3) == 'OOM' then
      return redis.error_reply(message)
    end
    -- Anything else (a key of another type) fails this decision only.
    reply = {-1, 0}
  end
  replies[d] = reply
end
-- Each charged key once, with its last state; it lives exactly as long as it differs from
-- no key: ceil((state - now) / 1 ms), plus now.lua's `ttl_pad` under a test clock. (Out of
-- memory fails the call here, with Redis's error, as above.)
for key in pairs(charged) do
  local state = values[key]
  -- A charged state lies after now (GCRA: by cost x interval; a window: its end).
  redis.call('SET', key, state, 'PX', floordiv(state - now + 999, 1000) + ttl_pad)
end
-- Each charged sliding window once: drop the cells that left, add this call's, and keep the
-- key until its newest cell leaves.
for key, w in pairs(windows) do
  if w.added > 0 then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now - w.span)
    -- (ZADD in chunks of 500 cells: unpack cannot spread more than ~8,000 values)
    for first = 1, #w.cells, 1000 do
      redis.call('ZADD', key, unpack(w.cells, first, math.min(first + 999, #w.cells)))
    end
    redis.call('PEXPIRE', key, floordiv(w.span + 999, 1000) + ttl_pad)
  end
end
return replies
