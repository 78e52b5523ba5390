-- lease_nack.lua: end a delivery without success.
--
-- KEYS[1]  the leases zset
-- KEYS[2]  the jobs hash
-- KEYS[3]  the queue's failed DLQ list
-- KEYS[4]  the delivery sequence counter
-- KEYS[5]  the batches zset (see batch.lua)
-- KEYS[6]  the queue's stats hash (see stats.lua)
-- ARGV[1]  the delivery id: "<seq>.<delivery number>.<token>", or
--          "b<bseq>.<j>.<token>" for an item of a batch
-- ARGV[2]  delay before redelivery, ms
-- ARGV[3]  max deliveries per item
-- ARGV[4]  the error to record
-- ARGV[5]  now as an ISO 8601 UTC string
-- ARGV[6]  the queue's name, JSON-quoted Python style
-- ARGV[7]  "1" to release: the delivery does not count (no dead-lettering,
--          no error recorded, the next delivery keeps this attempt number)
--
-- Returns -1 when the id holds no lease, 1 when the item moved to the
-- failed DLQ (its deliveries are used up), 0 when it waits for redelivery
-- as "<seq>:r" scored now + delay. An item of a batch is settled in the
-- batch and becomes a single delivery with a seq of its own first.

local seq = string.match(ARGV[1], single_id_pattern)
local job
if seq then
  if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return -1 end
  local packed = redis.call('HGET', KEYS[2], seq)
  redis.call('ZREM', KEYS[1], ARGV[1])
  if not packed then return -1 end
  job = cmsgpack.unpack(packed)
else
  local bseq, j, tok = batch_parse(ARGV[1])
  if not bseq or not redis.call('ZSCORE', KEYS[5], bseq) then return -1 end
  local r = redis.call('HMGET', KEYS[2], batch_fields(bseq))
  if not r[1] or not r[2] or not r[3] then return -1 end
  local marks = {string.byte(r[2], 1, -1)}
  if not batch_holds(marks, r[3], j, tok) then return -1 end
  local rec = cmsgpack.unpack(r[1])
  marks[j] = 49
  batch_store(KEYS[5], KEYS[2], bseq, marks)
  seq = redis.call('INCR', KEYS[4])
  job = {rec[1][j], 1, '', '', 1, 0, rec[2]}
end
local item, attempt, first_at, err, deliveries = job[1], job[2], job[3], job[4], job[5] or job[2]
local released = 0
if ARGV[7] == '1' then
  released = 1
else
  err = ARGV[4]
  if first_at == '' then first_at = ARGV[5] end
end
stat('nacked', 1 - released)
if released == 0 and attempt >= tonumber(ARGV[3]) then
  redis.call('RPUSH', KEYS[3], envelope().failed(ARGV[6], item, err, attempt, first_at, ARGV[5]))
  redis.call('HDEL', KEYS[2], seq)
  stat('failed', 1)
  return 1
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), seq .. ':r')
redis.call('HSET', KEYS[2], seq, cmsgpack.pack({item, attempt, first_at, err, deliveries, released, job[7]}))
return 0
