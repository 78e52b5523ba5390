-- lease_ack_batch.lua: settle several deliveries of one queue for good.
--
-- KEYS[1]  the leases zset
-- KEYS[2]  the jobs hash
-- KEYS[3]  the queue's stats hash (see stats.lua)
-- ARGV     the delivery ids "<seq>.<delivery number>.<token>"
--
-- Returns one integer per id, in order: 1 when that delivery still held
-- its lease (an expired lease not yet redelivered counts: nobody else
-- has the item) and is now settled, 0 otherwise.

local out, acked = {}, 0
for i = 1, #ARGV do
  local id = ARGV[i]
  local seq = string.match(id, '^(%d+)%.%d+%.' .. string.rep('%x', 16) .. '$')
  if seq and redis.call('ZREM', KEYS[1], id) == 1 then
    redis.call('HDEL', KEYS[2], seq)
    out[i] = 1
    acked = acked + 1
  else
    out[i] = 0
  end
end
stat('acked', acked)
return out
