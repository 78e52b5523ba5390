-- lease_ack.lua: settle a delivery for good.
--
-- KEYS[1]  the leases zset
-- KEYS[2]  the jobs hash
-- ARGV[1]  the delivery id "<seq>.<delivery number>"
--
-- Returns 1 when the delivery still held its lease (expired but not yet
-- redelivered counts: nobody else has the item), 0 otherwise.

local seq = string.match(ARGV[1], '^(%d+)%.%d+$')
if not seq then return 0 end
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HDEL', KEYS[2], seq)
return 1
