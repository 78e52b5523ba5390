-- cache_expire: PEXPIRE that refuses another kind of value.
--
-- KEYS[1]  the cache entry
-- KEYS[2]  (only when a lock can share the entry's key) that lock's fencing
--          counter
-- ARGV[1]  the new TTL in milliseconds (> 0)
--
-- Returns 1 when the TTL was set, 0 when the key does not exist, or a
-- WRONGTYPE error, changing nothing, when the key holds a list (a queue or
-- a DLQ) or any other non-string type, or is a lock's name: a plain PEXPIRE
-- would make a queue vanish with its items, or cut a held lock short.

local t = redis.call('TYPE', KEYS[1])['ok']
if t == 'none' then
  return 0
end
if t ~= 'string' then
  return redis.error_reply('WRONGTYPE the key holds a ' .. t .. ', not a cache entry; its TTL was not changed')
end
if KEYS[2] and redis.call('EXISTS', KEYS[2]) == 1 then
  return redis.error_reply('WRONGTYPE the key is a lock\'s name, not a cache entry; its TTL was not changed')
end
return redis.call('PEXPIRE', KEYS[1], ARGV[1])
