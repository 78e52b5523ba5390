-- lease_ack_batch.lua: settle several deliveries of one queue for good.
--
-- KEYS[1]  the leases zset
-- KEYS[2]  the jobs hash
-- KEYS[3]  the batches zset (see batch.lua)
-- KEYS[4]  the queue's stats hash (see stats.lua)
-- ARGV[1]  ns, how many single delivery ids follow
-- ARGV[2..ns+1]  single delivery ids "<seq>.<delivery number>.<token>"
-- then, per batch (batch.lua), three values:
--          its seq; a string with one byte per item up to the last one
--          asked for, "1" when asked for, else "0"; and the tokens of the
--          items asked for, in order, 16 hex digits each
-- The caller parses the ids (a Lua pattern per id would cost more than
-- the settling), so that a batch's items are checked in one step.
--
-- Returns one integer per single id, in order: 1 when that delivery still
-- held its lease (an expired lease not yet redelivered counts: nobody else
-- has the item) and is now settled, 0 otherwise; then one string per batch
-- as long as its request, "1" for each item settled now, else "0".

local out, acked = {}, 0
local ns = tonumber(ARGV[1])
for i = 2, ns + 1 do
  local id = ARGV[i]
  local seq = string.match(id, '^(%d+)%.')
  if seq and redis.call('ZREM', KEYS[1], id) == 1 then
    redis.call('HDEL', KEYS[2], seq)
    out[#out + 1] = 1
    acked = acked + 1
  else
    out[#out + 1] = 0
  end
end
for g = ns + 2, #ARGV, 3 do
  local bseq, req, toks = ARGV[g], ARGV[g + 1], ARGV[g + 2]
  local res = {}
  for j = 1, #req do res[j] = 48 end
  local marks, tokens
  if #req <= batch_max and redis.call('ZSCORE', KEYS[3], bseq) then
    marks, tokens = batch_state(KEYS[2], bseq)
  end
  if marks then
    local asked, want = {}, {}
    for j = 1, #req do
      if string.byte(req, j) == 49 then
        asked[#asked + 1] = j
        want[#want + 1] = string.sub(tokens, 16 * j - 15, 16 * j)
      end
    end
    -- One comparison for the whole group; item by item only when it fails.
    local all = table.concat(want) == toks
    local changed = false
    for k, j in ipairs(asked) do
      if marks[j] == 48 and (all or string.sub(toks, 16 * k - 15, 16 * k) == want[k]) then
        marks[j], res[j] = 49, 49
        changed = true
        acked = acked + 1
      end
    end
    if changed then batch_store(KEYS[3], KEYS[2], bseq, marks) end
  end
  out[#out + 1] = string.char(unpack(res))
end
stat('acked', acked)
return out
