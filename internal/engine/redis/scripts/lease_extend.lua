-- lease_extend.lua: push a live lease's deadline to now + lease.
--
-- KEYS[1]  the leases zset
-- KEYS[2]  the jobs hash
-- KEYS[3]  the batches zset (see batch.lua)
-- ARGV[1]  the delivery id: "<seq>.<delivery number>.<token>", or
--          "b<bseq>.<j>.<token>" for an item of a batch
-- ARGV[2]  lease length, ms
--
-- Returns 1 when extended, 0 when the id holds no live lease (unknown,
-- settled, or past its deadline: an expired lease may already be promised
-- to the next receive, so it is not revived). An item of a batch shares
-- the batch's lease: extending it extends the batch's other unsettled
-- items too.

local key, member = KEYS[1], ARGV[1]
if not string.match(ARGV[1], single_id_pattern) then
  local j, tok
  member, j, tok = batch_parse(ARGV[1])
  if not member then return 0 end
  local marks, tokens = batch_state(KEYS[2], member)
  if not marks or not batch_holds(marks, tokens, j, tok) then return 0 end
  key = KEYS[3]
end
local score = redis.call('ZSCORE', key, member)
if not score then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if tonumber(score) <= now then return 0 end
redis.call('ZADD', key, 'XX', now + tonumber(ARGV[2]), member)
return 1
