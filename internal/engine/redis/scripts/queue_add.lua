-- queue_add.lua: push a batch of items onto a bounded queue, applying the
-- overflow policy to each item in order, as one atomic step.
--
-- KEYS[1]  the queue list
-- KEYS[2]  the queue's overflow DLQ list
-- ARGV[1]  policy: "reject", "dlq" or "drop_oldest" (normalized by the
--          caller), or "reject_full": reject, for a queue the caller last
--          found full (see below)
-- ARGV[2]  max size; <= 0 means unbounded
-- ARGV[3]  the queue's name, JSON-quoted Python style (for DLQ envelopes)
-- ARGV[4..] the items, already encoded
--
-- Returns the queue's length before the batch. Each item's outcome
-- (accepted, length after, dropped, moved) follows from that length, the
-- policy and the max alone, so the caller derives it (engine.SimulateAdd,
-- which must agree with the arithmetic below) instead of
-- receiving four integers per item.
--
-- Item by item, a full queue evicts len - max + 1 items (the first time;
-- one per item after that) before the push. With pushes at the tail and
-- evictions at the head, that leaves the same list, and evicts the same
-- items in the same order, as pushing the whole batch and then evicting
-- max(0, len + n - max) items at once. Under reject, only the first
-- max - len items fit; every later one is rejected.
--
-- The caller sends an unbounded add as a plain RPUSH; this script also
-- handles max <= 0 (everything is pushed).

local policy = ARGV[1]
local max = tonumber(ARGV[2])
local first, last = 4, #ARGV
local n = last - first + 1
local chunk = 1000

-- push sends ARGV[from..to] to the tail, in chunks (unpack is bounded by
-- the Lua C stack), and returns the list's new length.
local function push(from, to)
  local length = 0
  for i = from, to, chunk do
    length = redis.call('RPUSH', KEYS[1], unpack(ARGV, i, math.min(i + chunk - 1, to)))
  end
  return length
end

-- Every redis.call costs about as much as the script call itself, so
-- policies push first and learn the length from RPUSH: one call when the
-- queue has room. Reject then takes back from the tail what did not fit;
-- nothing else runs inside the script, so nobody sees those items. For a
-- queue that is likely full ("reject_full") that would be two calls and
-- items copied for nothing, so there reject reads the length first.
local len, evict = 0, 0
if max > 0 and policy == 'reject_full' then
  len = redis.call('LLEN', KEYS[1])
  local fit = math.min(n, math.max(0, max - len))
  if fit > 0 then push(first, first + fit - 1) end
else
  len = push(first, last) - n
  if max > 0 then
    local over = math.max(0, len + n - max)
    if policy == 'dlq' or policy == 'drop_oldest' then
      evict = over
    elseif over > 0 then
      redis.call('RPOP', KEYS[1], math.min(over, n))
    end
  end
end

if evict > 0 then
  if policy == 'drop_oldest' then
    redis.call('LTRIM', KEYS[1], -max, -1)
  else
    local env = envelope()
    while evict > 0 do
      local items = redis.call('LPOP', KEYS[1], math.min(evict, chunk))
      local envs = {}
      for j = 1, #items do
        envs[j] = env.overflow(ARGV[3], items[j])
      end
      redis.call('RPUSH', KEYS[2], unpack(envs))
      evict = evict - #items
    end
  end
end

return len
