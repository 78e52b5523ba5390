-- lease_inflight.lua: count a queue's items in flight, by the server's
-- clock: leases whose deadline has not passed, nacked items whose delay
-- has not ended (both in the leases zset, scored by that time), the
-- unsettled items of batches whose deadline has not passed, and items in
-- the handoff list. A due entry is not in flight: it waits for the next
-- receive or sweep (lease_receive.lua).
--
-- KEYS[1]  the leases zset
-- KEYS[2]  the handoff list
-- KEYS[3]  the jobs hash
-- KEYS[4]  the batches zset (see batch.lua)

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf') + redis.call('LLEN', KEYS[2]) +
  batch_in_flight(KEYS[4], KEYS[3], '(' .. now)
