-- lock_acquire: take a lock when it is free and hand out its fencing token.
--
-- KEYS[1]  the lock (string holding the holder's token)
-- KEYS[2]  the lock's fencing counter (string, never expires)
-- ARGV[1]  token of the would-be holder
-- ARGV[2]  lock TTL in milliseconds (> 0)
--
-- Returns the new fencing token (integer) when the lock was taken, nil when
-- anyone (including the same token) already holds it, or a WRONGTYPE error
-- when the key holds a list (a queue or a DLQ). A string that is not a
-- Sluice lock (a cache entry, or a lock another client took with SET NX)
-- cannot be told from a held lock: it is never taken either.
--
-- The counter is incremented only on success, inside the same script as the
-- SET, so tokens strictly increase in the order the lock was taken. It is
-- never given a TTL: a counter that expired would restart at 1 and hand a
-- new holder a token lower than a stale holder's.

local t = redis.call('TYPE', KEYS[1])['ok']
if t == 'string' then
  return false
elseif t ~= 'none' then
  return redis.error_reply('WRONGTYPE the key holds a ' .. t .. ', not a lock')
end
local fence = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return fence
