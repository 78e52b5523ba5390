-- queue_deliveries.lua: one page of a queue's deliveries, earliest
-- deadline first (ties in the byte order of their members, as the zset
-- keeps them). It only reads.
--
-- KEYS[1]  the leases zset (delivery id or "<seq>:r" -> deadline, ms)
-- KEYS[2]  the jobs hash (see lease_receive.lua)
-- KEYS[3]  the batches zset (see batch.lua): each unsettled item of a
--          batch is listed as its own delivery, at the batch's deadline
-- ARGV[1]  how many deliveries at most (>= 1)
-- ARGV[2]  the cursor's deadline in ms, '' for the first page
-- ARGV[3]  the cursor's member: the page starts after (deadline, member)
--
-- Returns {more, last member, its deadline, then for each delivery:
-- member, deadline, item, attempt, delivered at (ms, or -1 when the state
-- does not say)}; more is 1 when deliveries follow the page, which then
-- continues after the last member (listed or not: members whose state is
-- gone are skipped).

local limit = tonumber(ARGV[1])
local cur_score = tonumber(ARGV[2])
local cur_member = ARGV[3]

-- after compares bytes, as the zset orders equal scores: Lua's own string
-- comparison follows the server's collation locale.
local function after(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x > y end
  end
  return #a > #b
end

local start = 0
if cur_score then
  start = redis.call('ZCOUNT', KEYS[1], '-inf', '(' .. ARGV[2])
end
local members, scores = {}, {}
local more = 0
local chunk = limit + 1
while more == 0 do
  local page = redis.call('ZRANGE', KEYS[1], start, start + chunk - 1, 'WITHSCORES')
  if #page == 0 then break end
  for i = 1, #page, 2 do
    local m, s = page[i], tonumber(page[i + 1])
    if not cur_score or s > cur_score or (s == cur_score and after(m, cur_member)) then
      if #members == limit then
        more = 1
        break
      end
      members[#members + 1] = m
      scores[#scores + 1] = s
    end
  end
  start = start + chunk
end

-- The unsettled items of batches after the cursor: whole batches in
-- deadline order until more than a page is found (every batch of the
-- last deadline taken, since their items interleave in byte order).
local bmembers, bscores, bitems = {}, {}, {}
local bmin = '-inf'
if cur_score then bmin = ARGV[2] end
local boff = 0
local last_score
while true do
  local page = redis.call('ZRANGEBYSCORE', KEYS[3], bmin, '+inf', 'WITHSCORES', 'LIMIT', boff, 100)
  if #page == 0 then break end
  local stop = false
  for i = 1, #page, 2 do
    local s = tonumber(page[i + 1])
    if #bmembers > limit and s ~= last_score then
      stop = true
      break
    end
    last_score = s
    local bseq = page[i]
    local r = redis.call('HMGET', KEYS[2], batch_fields(bseq))
    if r[1] and r[2] and r[3] then
      local rec = cmsgpack.unpack(r[1])
      for j = 1, #r[2] do
        if string.byte(r[2], j) == 48 then
          local m = 'b' .. bseq .. '.' .. j .. '.' .. batch_token(r[3], j)
          if not cur_score or s > cur_score or (s == cur_score and after(m, cur_member)) then
            bmembers[#bmembers + 1] = m
            bscores[m] = s
            bitems[m] = {rec[1][j], rec[2]}
          end
        end
      end
    end
  end
  if stop then break end
  boff = boff + 100
end
table.sort(bmembers, function(a, b)
  if bscores[a] ~= bscores[b] then return bscores[a] < bscores[b] end
  return after(b, a)
end)

-- Merge both, in (deadline, member) order, into one page.
local rows = {}
local i, j = 1, 1
while #rows < limit and (i <= #members or j <= #bmembers) do
  local take_single
  if i > #members then
    take_single = false
  elseif j > #bmembers then
    take_single = true
  else
    local bs = bscores[bmembers[j]]
    take_single = scores[i] < bs or (scores[i] == bs and after(bmembers[j], members[i]))
  end
  if take_single then
    rows[#rows + 1] = {members[i], scores[i]}
    i = i + 1
  else
    rows[#rows + 1] = {bmembers[j], bscores[bmembers[j]]}
    j = j + 1
  end
end
if i <= #members or j <= #bmembers then more = 1 end

local last = rows[#rows]
local out = {more, last and last[1] or '', last and last[2] or 0}
if #rows == 0 then return out end
local seqs = {}
for _, row in ipairs(rows) do
  if not bitems[row[1]] then seqs[#seqs + 1] = string.match(row[1], '^(%d+)') end
end
local packed = {}
if #seqs > 0 then
  local got = redis.call('HMGET', KEYS[2], unpack(seqs))
  for k, seq in ipairs(seqs) do packed[seq] = got[k] end
end
for _, row in ipairs(rows) do
  local m, s = row[1], row[2]
  local b = bitems[m]
  if b then
    out[#out + 1] = m
    out[#out + 1] = s
    out[#out + 1] = b[1]
    out[#out + 1] = 1
    out[#out + 1] = b[2]
  else
    local p = packed[string.match(m, '^(%d+)')]
    if p then
      local job = cmsgpack.unpack(p)
      out[#out + 1] = m
      out[#out + 1] = s
      out[#out + 1] = job[1]
      out[#out + 1] = job[2]
      out[#out + 1] = job[7] or -1
    end
  end
end
return out
