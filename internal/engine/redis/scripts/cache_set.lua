-- cache_set: SET that refuses to replace another kind of value.
--
-- KEYS[1]  the cache entry
-- KEYS[2]  (only when a lock can share the entry's key) that lock's fencing
--          counter, which exists once the name has been used for a lock
-- ARGV[1]  the value
-- ARGV[2]  TTL in milliseconds ("0": no expiry)
-- ARGV[3]  "1": set only when the key does not exist (SET NX)
--
-- Returns 1 when the value was set, 0 when NX found the key, or a WRONGTYPE
-- error, writing nothing, when the key holds a list (a queue or a DLQ) or
-- any other non-string type, or is a lock's name. A plain SET would replace
-- all of those.

local t = redis.call('TYPE', KEYS[1])['ok']
if t ~= 'none' and t ~= 'string' then
  return redis.error_reply('WRONGTYPE the key holds a ' .. t .. ', not a cache entry; nothing was written')
end
if KEYS[2] and redis.call('EXISTS', KEYS[2]) == 1 then
  return redis.error_reply('WRONGTYPE the key is a lock\'s name, not a cache entry; nothing was written')
end
if ARGV[3] == '1' and t ~= 'none' then
  return 0
end
if ARGV[2] == '0' then
  redis.call('SET', KEYS[1], ARGV[1])
else
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
return 1
