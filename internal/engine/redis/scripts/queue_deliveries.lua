-- queue_deliveries.lua: one page of a queue's deliveries, earliest
-- deadline first (ties in the byte order of their members, as the zset
-- keeps them). It only reads.
--
-- KEYS[1]  the leases zset (delivery id or "<seq>:r" -> deadline, ms)
-- KEYS[2]  the jobs hash (see lease_receive.lua)
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

local out = {more, members[#members] or '', scores[#scores] or 0}
if #members == 0 then return out end
local seqs = {}
for i, m in ipairs(members) do
  seqs[i] = string.match(m, '^(%d+)')
end
local packed = redis.call('HMGET', KEYS[2], unpack(seqs))
for i, m in ipairs(members) do
  if packed[i] then
    local job = cmsgpack.unpack(packed[i])
    out[#out + 1] = m
    out[#out + 1] = scores[i]
    out[#out + 1] = job[1]
    out[#out + 1] = job[2]
    out[#out + 1] = job[7] or -1
  end
end
return out
