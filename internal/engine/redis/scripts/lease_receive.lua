-- lease_receive.lua: hand out up to a count of items under a lease.
-- First it settles leases that are due (expired, or nacked and past their
-- delay): one that has used its deliveries moves to the failed DLQ, the
-- others are redelivered first with attempt+1 and a new delivery id. Then it
-- leases fresh items: the handoff list first (items a blocking receive moved
-- out of the queue and did not get to lease), then the queue's head.
--
-- KEYS[1]  the queue list
-- KEYS[2]  the queue's handoff list
-- KEYS[3]  the leases zset (delivery id or "<seq>:r" -> deadline, ms)
-- KEYS[4]  the jobs hash (seq -> msgpack {item, attempt, first_failed_at, error,
--          deliveries, released, delivered at in ms (absent in older state)})
-- KEYS[5]  the delivery sequence counter
-- KEYS[6]  the queue's failed DLQ list
-- KEYS[7]  the queue's settings hash (see settings.lua)
-- KEYS[8]  the queue's scheduled items (see scheduled.lua)
-- KEYS[9]  the batches zset (see batch.lua)
-- KEYS[10] the queue's stats hash (see stats.lua)
-- ARGV[1]  how many items to hand out (0: only settle due leases)
-- ARGV[2]  lease length, ms
-- ARGV[3]  max deliveries per item (a sweep prefers the declared one)
-- ARGV[4]  now as an ISO 8601 UTC string, for DLQ envelopes
-- ARGV[5]  the queue's name, JSON-quoted Python style
-- ARGV[6]  how many due leases to examine at most (-1: all)
-- ARGV[7]  "1" when the caller wants the earliest deadline (it is about to
--          block), else "0"
-- ARGV[8]  one random token per item that may be handed out (ARGV[1] of
--          them), 16 hex digits each, drawn by the caller from a CSPRNG
--
-- A paused queue (settings field paused = "1") hands nothing out: with a
-- count above 0 the script moves the handoff list's items back to the
-- queue's head, in order (a blocking receive may have moved one there
-- before the pause), and returns {-1, -1} at once. With a count of 0 (a
-- reclaim) it settles due leases as usual.
--
-- Returns {dead_lettered, ms until the earliest remaining deadline (or
-- scheduled item) or -1
-- (always -1 unless asked for, or when items were handed out),
-- k, then k single deliveries: id1, item1, attempt1, ..., idk, itemk,
-- attemptk, then the leased batches (batch.lua), each as bseq, the index
-- (from 0) of its first item's token in ARGV[8], n, item1, ..., itemn
-- (first deliveries: attempt 1, ids "b<bseq>.<j>.<token>")}.
-- Several items never delivered before are leased as a batch; a single
-- one, and every redelivery, as a single delivery.
--
-- A delivery id is "<seq>.<delivery number>.<token>": every delivery
-- changes it, so a consumer still holding an older id cannot settle the
-- item any more, and its random token makes it impossible to guess from
-- another id. (Leases written before ids had a token, "<seq>.<n>", still
-- expire and are redelivered, but no id settles them.) The
-- attempt is counted apart from it: a released item (a nack that does not
-- count) is delivered again with the same attempt. A nacked or released
-- item waits as "<seq>:r", which no delivery id can match.

local count = tonumber(ARGV[1])
local lease = tonumber(ARGV[2])
local max_deliveries = tonumber(ARGV[3])
local now_iso = ARGV[4]
local queue_json = ARGV[5]
local scan = tonumber(ARGV[6])
local tokens = ARGV[8] or ''
local delivered = 0

-- A sweep (count 0) dead-letters by the queue's declared max deliveries
-- when it has one: declared settings win (settings.lua).
if count == 0 then
  local declared = redis.call('HGET', KEYS[7], 'max_deliveries')
  if declared then max_deliveries = tonumber(declared) end
end

if count > 0 and redis.call('HGET', KEYS[7], 'paused') == '1' then
  while redis.call('LMOVE', KEYS[2], KEYS[1], 'RIGHT', 'LEFT') do end
  return {-1, -1}
end

-- token returns the random part of the next delivery's id.
local function token()
  local i = delivered * 16
  return string.sub(tokens, i + 1, i + 16)
end

local now = server_ms()
local deadline = now + lease

-- Scheduled items that are due become visible first, as due leases
-- become deliverable: the same step, so a sweep (count 0) does both.
release_due(KEYS[8], KEYS[1], now)

local out = {0, -1, 0}
local dead = 0

-- Expired batches become single expired leases first, so that the scan
-- below settles them with the rest.
batch_expire(KEYS[9], KEYS[3], KEYS[4], KEYS[5], now, scan)

local due
if scan < 0 then
  due = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)
else
  due = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, scan)
end
for _, member in ipairs(due) do
  local seq = string.match(member, '^(%d+)%.%d+')
  local expired = seq ~= nil
  if not expired then seq = string.match(member, '^(%d+):r$') end
  local packed = seq and redis.call('HGET', KEYS[4], seq)
  if not packed then
    -- No state to act on: drop the orphan entry rather than rescan it forever.
    redis.call('ZREM', KEYS[3], member)
  else
    local job = cmsgpack.unpack(packed)
    local item, attempt, first_at, err = job[1], job[2], job[3], job[4]
    local deliveries, released = job[5] or attempt, job[6] == 1
    if expired then
      err = 'lease expired'
      if first_at == '' then first_at = now_iso end
    end
    if not released and attempt >= max_deliveries then
      redis.call('RPUSH', KEYS[6], envelope().failed(queue_json, item, err, attempt, first_at, now_iso))
      redis.call('ZREM', KEYS[3], member)
      redis.call('HDEL', KEYS[4], seq)
      dead = dead + 1
    elseif delivered < count then
      if not released then attempt = attempt + 1 end
      if expired then stat('redelivered', 1) end
      deliveries = deliveries + 1
      local id = seq .. '.' .. deliveries .. '.' .. token()
      redis.call('ZREM', KEYS[3], member)
      redis.call('ZADD', KEYS[3], deadline, id)
      redis.call('HSET', KEYS[4], seq, cmsgpack.pack({item, attempt, first_at, err, deliveries, 0, now}))
      delivered = delivered + 1
      out[#out + 1] = id
      out[#out + 1] = item
      out[#out + 1] = attempt
    end
  end
end

-- lease_single leases one item never delivered before.
local function lease_single(item)
  local seq = redis.call('INCR', KEYS[5])
  local id = seq .. '.1.' .. token()
  redis.call('ZADD', KEYS[3], deadline, id)
  redis.call('HSET', KEYS[4], seq, cmsgpack.pack({item, 1, '', '', 1, 0, now}))
  out[#out + 1] = id
  out[#out + 1] = item
  out[#out + 1] = 1
  delivered = delivered + 1
end

-- lease_batch leases items never delivered before as batches of at most
-- batch_max (batch.lua): one zset entry and two hash fields per batch.
local batches = {}
local function lease_batch(items)
  for from = 1, #items, batch_max do
    local slice = items
    if from > 1 or #items > batch_max then
      slice = {unpack(items, from, math.min(from + batch_max - 1, #items))}
    end
    local bseq = redis.call('INCR', KEYS[5])
    local rec, marks, toks = batch_fields(bseq)
    redis.call('ZADD', KEYS[9], deadline, bseq)
    redis.call('HSET', KEYS[4], rec, cmsgpack.pack({slice, now}), marks, string.rep('0', #slice),
      toks, string.sub(tokens, delivered * 16 + 1, (delivered + #slice) * 16))
    batches[#batches + 1] = {bseq, delivered, slice}
    delivered = delivered + #slice
  end
end

if delivered < count then
  -- The handoff list's items first (a blocking receive moved them out of
  -- the queue), then the queue's head.
  local fresh = redis.call('LPOP', KEYS[2], count - delivered) or {}
  if #fresh < count - delivered then
    local more = redis.call('LPOP', KEYS[1], count - delivered - #fresh)
    if more then
      if #fresh == 0 then
        fresh = more
      else
        for _, item in ipairs(more) do fresh[#fresh + 1] = item end
      end
    end
  end
  if #fresh == 1 then
    lease_single(fresh[1])
  elseif #fresh > 1 then
    lease_batch(fresh)
  end
end

-- A sweep also samples the head, after releasing what was due.
if count == 0 then sample_head(KEYS[1], now) end
stat('delivered', delivered)
stat('failed', dead)
out[1] = dead
out[3] = (#out - 3) / 3
if ARGV[7] == '1' and delivered == 0 then
  -- The earliest lease deadline or scheduled item, whichever comes first.
  for _, key in ipairs({KEYS[3], KEYS[8], KEYS[9]}) do
    local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    if #first == 2 then
      local wait = math.max(tonumber(first[2]) - now, 0)
      if out[2] < 0 or wait < out[2] then out[2] = wait end
    end
  end
end
for _, b in ipairs(batches) do
  local n = #out
  out[n + 1], out[n + 2], out[n + 3] = b[1], b[2], #b[3]
  n = n + 3
  for j, item in ipairs(b[3]) do out[n + j] = item end
end
return out
