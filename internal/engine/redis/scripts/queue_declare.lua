-- queue_declare.lua: replace a queue's declared settings, as one atomic
-- step, keeping its paused flag.
--
-- KEYS[1]  the queue's settings hash (see settings.lua)
-- ARGV[1..5]  max_size, policy, pressure, lease_ms, max_deliveries, in
--          that order: the declared value, or '' for a field that is not
--          declared (and is removed)
--
-- Returns the hash afterwards, as HGETALL does.

local fields = {'max_size', 'policy', 'pressure', 'lease_ms', 'max_deliveries'}
for i, field in ipairs(fields) do
  if ARGV[i] == '' then
    redis.call('HDEL', KEYS[1], field)
  else
    redis.call('HSET', KEYS[1], field, ARGV[i])
  end
end
return redis.call('HGETALL', KEYS[1])
