-- KEYS[1] session, KEYS[2] its user's index (an anonymous session: its group's anonymous
-- index). ARGV: idle ms, absolute ms, max bytes, user ('' none), limit (0 none), policy
-- ('reject' or 'evict'), ip, user agent, session key base, digest of a session of the same
-- user this one replaces ('' none), most anonymous sessions in the group (0 no bound),
-- changes from 12.
-- Reply: evicted count (>= 0: of the user's sessions, or of the group's anonymous ones),
-- -1 too large, -2 key taken, -3 over the limit.
local now = now_ms()
if redis.call('EXISTS', KEYS[1]) == 1 then
  return -2
end
local absolute = now + tonumber(ARGV[2])
local head = {'m:created', now, 'm:rot', now, 'm:abs', absolute, 'm:seen', now}
if ARGV[4] ~= '' then
  head[#head + 1] = 'm:user'
  head[#head + 1] = ARGV[4]
end
if ARGV[7] ~= '' then
  head[#head + 1] = 'm:ip'
  head[#head + 1] = ARGV[7]
end
if ARGV[8] ~= '' then
  head[#head + 1] = 'm:ua'
  head[#head + 1] = ARGV[8]
end
hset(KEYS[1], head)
if not apply(KEYS[1], 12, tonumber(ARGV[3]), 0, {}) then
  redis.call('DEL', KEYS[1])
  return -1
end
local evicted = 0
if ARGV[4] ~= '' then
  local base, replaced = ARGV[9], ARGV[10]
  prune(KEYS[2], base, now)
  -- A new login of a session of this user replaces it: the old id does not count, and
  -- ends here once the new one is admitted.
  local count = redis.call('ZCARD', KEYS[2])
  if replaced ~= '' and redis.call('ZSCORE', KEYS[2], replaced) then
    count = count - 1
  end
  local limit = tonumber(ARGV[5])
  if limit > 0 then
    while count >= limit do
      if ARGV[6] == 'reject' then
        redis.call('DEL', KEYS[1])
        return -3
      end
      -- Lowest score = earliest absolute expiry = created first (scores are in µs).
      local oldest = redis.call('ZRANGE', KEYS[2], 0, 1)
      local victim = oldest[1]
      if victim == replaced then
        victim = oldest[2]
      end
      redis.call('DEL', base .. ':' .. victim)
      redis.call('ZREM', KEYS[2], victim)
      evicted = evicted + 1
      count = count - 1
    end
  end
  if replaced ~= '' then
    redis.call('DEL', base .. ':' .. replaced)
    redis.call('ZREM', KEYS[2], replaced)
  end
  redis.call('ZADD', KEYS[2], now_us() + tonumber(ARGV[2]) * 1000, string.sub(KEYS[1], -32))
  extend(KEYS[2], absolute, now)
elseif tonumber(ARGV[11]) > 0 then
  -- The group's anonymous sessions, scored by creation (µs): past the budget, the oldest
  -- made go first. A member whose session already ended (idle, logout) only frees its
  -- place; so the live anonymous sessions of the group never pass the budget.
  local base = ARGV[9]
  while redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[11]) do
    local oldest = redis.call('ZPOPMIN', KEYS[2])
    local victim = base .. ':' .. oldest[1]
    if is_live(meta(victim)) and redis.call('HEXISTS', victim, 'm:user') == 0 then
      redis.call('DEL', victim)
      evicted = evicted + 1
    end
  end
  redis.call('ZADD', KEYS[2], now_us(), string.sub(KEYS[1], -32))
  extend(KEYS[2], absolute, now)
end
redis.call('PEXPIREAT', KEYS[1], math.min(now + tonumber(ARGV[1]), absolute))
return evicted
