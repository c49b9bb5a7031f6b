-- KEYS[1] generation marker (string, no TTL: the ms Redis's copy of the revocations began)
-- KEYS[2] global epoch, KEYS[3] the log
-- ARGV[1] retention ms, ARGV[2] channel, ARGV[3] '1' when an absent marker is trusted as a
-- first start, ARGV[4] the generation this instance knew ('' for none)
-- Returns {generation, 1 when this call wrote it}. An absent marker means a first start or a Redis that lost its
-- data (restarted empty, flushed, the marker evicted): the two cannot be told apart, so
-- unless trusted, every token issued before the new generation is refused. A generation
-- other than the one known is a loss for sure.
local generation = redis.call('GET', KEYS[1])
local created = false
if not generation then
  generation = ms(now_ms())
  redis.call('SET', KEYS[1], generation)
  created = true
end
if (created and ARGV[3] ~= '1') or (ARGV[4] ~= '' and ARGV[4] ~= generation) then
  raise_epoch(KEYS[2], tonumber(generation), tonumber(ARGV[1]), KEYS[3], ARGV[2])
end
return {generation, created and 1 or 0}
