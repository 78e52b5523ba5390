-- batch.lua: leases kept per batch, prepended to the scripts that lease,
-- settle, extend, count or list deliveries.
--
-- A receive that hands out several items never delivered before leases
-- them as one batch, because one lease per item costs Redis a sorted-set
-- entry, a hash field and a packed record each (most of a receive's time):
--
--   sluice#batches:Q  member "<bseq>" scored by the lease deadline
--   sluice#jobs:Q     field "b<bseq>": msgpack {items, delivered at (ms)}
--                     field "b<bseq>:s": one byte per item, "0" while the
--                     item is unsettled, "1" once acked, nacked or released
--                     field "b<bseq>:t": the items' tokens, 16 hex digits each
--
-- Item j (from 1) of the batch is delivery "b<bseq>.<j>.<token j>"; <bseq>
-- comes from the queue's delivery counter, and each item's token is 16
-- random hex digits of its own, so that no id can be guessed from another,
-- not even from one of the same batch. Each item is settled on its own
-- (its byte). A nack or release turns the item into a single
-- delivery (lease_nack.lua); when the lease expires, the unsettled items
-- become single expired leases (batch_expire), which lease_receive.lua
-- redelivers or dead-letters like any other. Extending one item's lease
-- extends the batch: its other unsettled items are held by the same
-- consumer.
--
-- The batches live in a key of their own so that a server whose scripts
-- predate them (during a rolling upgrade) never sees a member it does not
-- know: it would take it for an orphan and drop it with its items.

-- The two forms of delivery id: a single delivery's, capturing its seq,
-- and an item of a batch's, capturing the batch's seq, the index and the
-- token.
local single_id_pattern = '^(%d+)%.%d+%.' .. string.rep('%x', 16) .. '$'
local batch_id_pattern = '^b(%d+)%.(%d+)%.(' .. string.rep('%x', 16) .. ')$'
-- The most items in one batch: the settlement string is unpacked into Lua
-- values at once, which must stay within the stack's limit.
local batch_max = 1000

-- batch_parse returns the batch's seq, the item's index and its token of
-- a batch delivery id, or nil for any other id.
local function batch_parse(id)
  local bseq, j, tok = string.match(id, batch_id_pattern)
  if not bseq then return nil end
  return bseq, tonumber(j), tok
end

-- batch_state returns the settlement bytes (a table of 48 for "0" and 49
-- for "1") and the tokens of a batch, or nil when it holds no state.
local function batch_state(jobs, bseq)
  local r = redis.call('HMGET', jobs, 'b' .. bseq .. ':s', 'b' .. bseq .. ':t')
  if not r[1] or not r[2] then return nil end
  return {string.byte(r[1], 1, -1)}, r[2]
end

-- batch_token returns item j's token from a batch's tokens.
local function batch_token(tokens, j)
  return string.sub(tokens, 16 * j - 15, 16 * j)
end

-- batch_holds tells whether item j of a batch with these settlement bytes
-- and tokens is unsettled and has token tok.
local function batch_holds(marks, tokens, j, tok)
  return marks[j] == 48 and batch_token(tokens, j) == tok
end

-- batch_fields are the hash fields of a batch.
local function batch_fields(bseq)
  return 'b' .. bseq, 'b' .. bseq .. ':s', 'b' .. bseq .. ':t'
end

-- batch_unsettled counts the unsettled items of a settlement string.
local function batch_unsettled(s)
  local _, n = string.gsub(s, '0', '')
  return n
end

-- batch_in_flight counts the unsettled items of the batches whose
-- deadline is within min..+inf (ZRANGEBYSCORE bounds).
local function batch_in_flight(batches, jobs, min)
  local n = 0
  for _, bseq in ipairs(redis.call('ZRANGEBYSCORE', batches, min, '+inf')) do
    local s = redis.call('HGET', jobs, 'b' .. bseq .. ':s')
    if s then n = n + batch_unsettled(s) end
  end
  return n
end

-- batch_store writes a batch's settlement bytes back, or drops the batch
-- once every item is settled.
local function batch_store(batches, jobs, bseq, marks)
  for _, b in ipairs(marks) do
    if b == 48 then
      redis.call('HSET', jobs, 'b' .. bseq .. ':s', string.char(unpack(marks)))
      return
    end
  end
  redis.call('ZREM', batches, bseq)
  redis.call('HDEL', jobs, batch_fields(bseq))
end

-- batch_expire turns the unsettled items of the batches whose deadline
-- has passed (at most scan batches; -1: all) into single expired leases,
-- "<seq>.1.<its token>" in the leases zset at the batch's deadline, each with
-- the record a single lease would have had. That is the state a receive
-- of one item at a time would have left, so the rules of expiry
-- (redelivery, max deliveries, the counters) are the ones of single
-- leases. Nobody holds the new ids; the batch's ids no longer settle.
local function batch_expire(batches, leases, jobs, seqkey, now, scan)
  local due
  if scan < 0 then
    due = redis.call('ZRANGEBYSCORE', batches, '-inf', now, 'WITHSCORES')
  else
    due = redis.call('ZRANGEBYSCORE', batches, '-inf', now, 'WITHSCORES', 'LIMIT', 0, scan)
  end
  for i = 1, #due, 2 do
    local member, deadline = due[i], due[i + 1]
    local r = redis.call('HMGET', jobs, batch_fields(member))
    redis.call('ZREM', batches, member)
    if r[1] and r[2] and r[3] then
      redis.call('HDEL', jobs, batch_fields(member))
      local rec, s, tokens = cmsgpack.unpack(r[1]), r[2], r[3]
      local n = batch_unsettled(s)
      if n > 0 then
        local seq = redis.call('INCRBY', seqkey, n) - n
        local zargs, hargs = {}, {}
        for j = 1, #s do
          if string.byte(s, j) == 48 then
            seq = seq + 1
            zargs[#zargs + 1] = deadline
            zargs[#zargs + 1] = seq .. '.1.' .. batch_token(tokens, j)
            hargs[#hargs + 1] = seq
            hargs[#hargs + 1] = cmsgpack.pack({rec[1][j], 1, '', '', 1, 0, rec[2]})
          end
        end
        redis.call('ZADD', leases, unpack(zargs))
        redis.call('HSET', jobs, unpack(hargs))
      end
    end
  end
end
