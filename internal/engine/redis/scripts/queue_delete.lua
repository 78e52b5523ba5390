-- queue_delete.lua: delete a queue with its dead-letter queues, delivery
-- state and settings, as one atomic step.
--
-- KEYS[1]  the queue list
-- KEYS[2]  the queue's overflow DLQ list
-- KEYS[3]  the queue's failed DLQ list
-- KEYS[4]  the leases zset
-- KEYS[5]  the jobs hash
-- KEYS[6]  the handoff list
-- KEYS[7]  the settings hash
-- KEYS[8]  the wake list
-- KEYS[9]  the scheduled items (counted with the queue's items)
-- KEYS[10] the stats hash (deleted with the queue)
-- KEYS[11] the batches zset (see batch.lua)
-- ARGV[1]  "1" to delete even with items in flight
--
-- In flight are leased items, items waiting for redelivery (both in the
-- leases zset), the unsettled items of leased batches and items in the
-- handoff list. Without force and with any
-- in flight, nothing is deleted and the script returns {-1, in flight}.
-- Otherwise it returns {items, overflow DLQ entries, failed DLQ entries,
-- in flight, 1 if the settings hash existed else 0}. The delivery counter
-- stays, so that no delivery id of the deleted queue is handed out again.
-- Consumers waiting for a paused queue's resume are woken (the queue is no
-- longer paused), as queue_pause.lua wakes them.

local in_flight = redis.call('ZCARD', KEYS[4]) + redis.call('LLEN', KEYS[6]) +
  batch_in_flight(KEYS[11], KEYS[5], '-inf')
if in_flight > 0 and ARGV[1] ~= '1' then
  return {-1, in_flight}
end
local items = redis.call('LLEN', KEYS[1]) + redis.call('ZCARD', KEYS[9])
local overflow = redis.call('LLEN', KEYS[2])
local failed = redis.call('LLEN', KEYS[3])
local settings = redis.call('EXISTS', KEYS[7])
local was_paused = redis.call('HGET', KEYS[7], 'paused') == '1'
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10], KEYS[11])
if was_paused then
  redis.call('RPUSH', KEYS[8], '1')
end
return {items, overflow, failed, in_flight, settings}
