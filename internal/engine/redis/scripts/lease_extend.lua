-- lease_extend.lua: push a live lease's deadline to now + lease.
--
-- KEYS[1]  the leases zset
-- ARGV[1]  the delivery id "<seq>.<delivery number>.<token>"
-- ARGV[2]  lease length, ms
--
-- Returns 1 when extended, 0 when the id holds no live lease (unknown,
-- settled, or past its deadline: an expired lease may already be promised
-- to the next receive, so it is not revived).

if not string.match(ARGV[1], '^%d+%.%d+%.' .. string.rep('%x', 16) .. '$') then return 0 end
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if tonumber(score) <= now then return 0 end
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1])
return 1
