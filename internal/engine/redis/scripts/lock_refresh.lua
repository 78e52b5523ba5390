-- lock_refresh: give a lock a new TTL only if the given token still holds it.
--
-- KEYS[1]  the lock (string holding the holder's token)
-- ARGV[1]  token of the caller
-- ARGV[2]  new TTL in milliseconds (> 0)
--
-- Returns 1 when the TTL was set, 0 when the token does not hold the lock.

if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
