-- lock_release: delete a lock only if the given token still holds it.
--
-- KEYS[1]  the lock (string holding the holder's token)
-- ARGV[1]  token of the caller
--
-- Returns 1 when the lock was deleted, 0 when the token does not hold it
-- (it expired, was taken by another token, or never existed). The fencing
-- counter is left alone.

if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
