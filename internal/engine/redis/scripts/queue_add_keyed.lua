-- queue_add_keyed.lua: idempotent adds to one bounded queue, one or more
-- (merged) in order, each as one atomic step with its key's record.
--
-- KEYS[1]     the queue list
-- KEYS[2]     the queue's overflow DLQ list
-- KEYS[2+j]   the idempotency record of add j (see keyspace.Idempotency)
-- ARGV[1]     policy: "reject", "dlq" or "drop_oldest" (normalized)
-- ARGV[2]     max size; <= 0 means unbounded
-- ARGV[3]     the queue's name, JSON-quoted Python style (for DLQ envelopes)
-- ARGV[4]     m, the number of adds
-- then for each add j: its record's lifetime in ms, its record without the
-- leading length (engine.IdempotencyRecord.Tail), its item count, and its
-- items.
--
-- Returns one value per add: its key's record (a bulk string) when the key
-- was already there, and nothing of that add was written; otherwise the
-- queue's length before it (an integer), after which its items were added
-- as queue_add.lua adds a batch and its record ("<length before>:" ..
-- tail) was stored with its lifetime. Adds are taken in order, so a key
-- used twice in one call is added once and found by the second add.

local policy = ARGV[1]
local max = tonumber(ARGV[2])
local m = tonumber(ARGV[4])
local chunk = 1000

local function push(from, to)
  local length = 0
  for i = from, to, chunk do
    length = redis.call('RPUSH', KEYS[1], unpack(ARGV, i, math.min(i + chunk - 1, to)))
  end
  return length
end

-- add pushes ARGV[first..last] under the policy, with queue_add.lua's
-- arithmetic (engine.SimulateAdd), and returns the length before.
local function add(first, last)
  local n = last - first + 1
  local len = push(first, last) - n
  if max <= 0 then
    return len
  end
  local over = math.max(0, len + n - max)
  if over == 0 then
    return len
  end
  if policy == 'drop_oldest' then
    redis.call('LTRIM', KEYS[1], -max, -1)
  elseif policy == 'dlq' then
    local env = envelope()
    while over > 0 do
      local items = redis.call('LPOP', KEYS[1], math.min(over, chunk))
      local envs = {}
      for j = 1, #items do
        envs[j] = env.overflow(ARGV[3], items[j])
      end
      redis.call('RPUSH', KEYS[2], unpack(envs))
      over = over - #items
    end
  else
    redis.call('RPOP', KEYS[1], math.min(over, n))
  end
  return len
end

local out = {}
local a = 5
for j = 1, m do
  local count = tonumber(ARGV[a + 2])
  local first, last = a + 3, a + 2 + count
  local prev = redis.call('GET', KEYS[2 + j])
  if prev then
    out[j] = prev
  else
    local len = add(first, last)
    redis.call('SET', KEYS[2 + j], len .. ':' .. ARGV[a + 1], 'PX', ARGV[a])
    out[j] = len
  end
  a = last + 1
end
return out
