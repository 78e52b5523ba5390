-- queue_add.lua: push a batch of items onto a bounded queue, applying the
-- overflow policy to each item in order, as one atomic step.
--
-- KEYS[1]  the queue list
-- KEYS[2]  the queue's overflow DLQ list
-- ARGV[1]  policy: "reject", "dlq" or "drop_oldest" (normalized by the caller)
-- ARGV[2]  max size; <= 0 means unbounded
-- ARGV[3]  the queue's name, JSON-quoted Python style (for DLQ envelopes)
-- ARGV[4..] the items, already encoded
--
-- Returns a flat array of 4 integers per item, in item order:
-- accepted (1/0), queue length after the item, items dropped, items moved
-- to the overflow DLQ.
--
-- Pushes happen in bulk: with pushes at the tail and removals at the head,
-- "evict n then push" per item leaves the same list and the same eviction
-- order as pushing every accepted item and then evicting the sum at once.

local policy = ARGV[1]
local max = tonumber(ARGV[2])
local queue_json = ARGV[3]
local first = 4
local len = redis.call('LLEN', KEYS[1])

local result = {}
local accepted = {}
local evict = 0
for i = first, #ARGV do
  local ok, dropped, moved = 1, 0, 0
  if max > 0 and len >= max then
    if policy == 'dlq' then
      moved = len - max + 1
      len = max
    elseif policy == 'drop_oldest' then
      dropped = len - max + 1
      len = max
    else
      ok = 0
    end
  else
    len = len + 1
  end
  if ok == 1 then
    accepted[#accepted + 1] = ARGV[i]
    evict = evict + dropped + moved
  end
  local r = #result
  result[r + 1] = ok
  result[r + 2] = len
  result[r + 3] = dropped
  result[r + 4] = moved
end

-- unpack is bounded by the Lua C stack: push in chunks.
local chunk = 1000
for i = 1, #accepted, chunk do
  redis.call('RPUSH', KEYS[1], unpack(accepted, i, math.min(i + chunk - 1, #accepted)))
end

if evict > 0 then
  if policy == 'drop_oldest' then
    redis.call('LTRIM', KEYS[1], -max, -1)
  else
    local envs, env = {}, envelope()
    while evict > 0 do
      local n = math.min(evict, chunk)
      local items = redis.call('LPOP', KEYS[1], n)
      for j = 1, #items do
        envs[j] = env.overflow(queue_json, items[j])
      end
      redis.call('RPUSH', KEYS[2], unpack(envs, 1, #items))
      evict = evict - n
    end
  end
end

return result
