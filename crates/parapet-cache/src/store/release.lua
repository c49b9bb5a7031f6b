-- Releases a fetch lease if this instance still holds it (its token), so a lease that
-- expired and was taken by another instance is never released by the first.
-- KEYS[1]: the lease.  ARGV[1]: the token.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
