-- queue_add_keyed.lua: idempotent adds to one bounded queue, one or more
-- (merged) in order, each as one atomic step with its key's record.
--
-- KEYS[1]     the queue list
-- KEYS[2]     the queue's overflow DLQ list
-- KEYS[3]     the queue's settings hash (see settings.lua)
-- KEYS[4]     the queue's scheduled items (see scheduled.lua)
-- KEYS[5]     the queue's delivery counter (numbers scheduled items)
-- KEYS[5+j]   the idempotency record of add j (see keyspace.Idempotency)
-- KEYS[#KEYS] the queue's stats hash, after the records (see stats.lua)
-- ARGV[1]     the call's policy: "reject", "dlq" or "drop_oldest" (normalized)
-- ARGV[2]     the call's max size; <= 0 means unbounded
-- ARGV[3]     the queue's name, JSON-quoted Python style (for DLQ envelopes)
-- ARGV[4]     m, the number of adds
-- ARGV[5]     flags: "1" at position 1 when the max size was given
--             explicitly, at position 2 when the policy was (settings.lua)
-- ARGV[6]     "" for items to push now, or the delay in ms after which
--             they become visible (scheduled.lua)
-- then for each add j: its record's lifetime in ms, its item count, the
-- fingerprint of its items (engine.Fingerprint), and its items.
--
-- Returns {conflict, max size, policy, one value per add}. conflict is 0
-- and max size and policy are the ones applied (the declared ones win,
-- see resolve_bound), or conflict is 1 and they are the declared ones as
-- stored. Per add: its key's record (a bulk string) when the key was
-- already there, and nothing of that add was written; -1 when its key was
-- not there and the call conflicts with the declared settings (nothing
-- written); otherwise the queue's length before it (an integer), after
-- which its items were added as queue_add.lua adds a batch and its record
-- (engine.IdempotencyRecord.Encode: "<length before>:<count>:<max>:
-- <policy>:<fingerprint>", with the bound and policy applied) was stored
-- with its lifetime. Adds are taken in order, so a key used twice in one
-- call is added once and found by the second add.

local ok, max, policy = resolve_bound(KEYS[3], ARGV[1], tonumber(ARGV[2]), ARGV[5])
local m = tonumber(ARGV[4])
local chunk = 1000

local function push(from, to)
  local length = 0
  for i = from, to, chunk do
    length = redis.call('RPUSH', KEYS[1], unpack(ARGV, i, math.min(i + chunk - 1, to)))
  end
  return length
end

-- at: the not-before time of scheduled items, nil for items to push now.
local at = nil
if ARGV[6] ~= '' then at = server_ms() + tonumber(ARGV[6]) end

-- add pushes ARGV[first..last] under the policy, with queue_add.lua's
-- arithmetic (engine.SimulateAdd), and returns the length before.
local function add(first, last)
  -- Scheduled items, or a queue holding some: item by item (scheduled.lua).
  if at or redis.call('EXISTS', KEYS[4]) == 1 then
    return add_each(KEYS[1], KEYS[2], KEYS[4], KEYS[5], ARGV[3], first, last, max, policy, at)
  end
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

local out = {ok and 0 or 1, max, policy}
local a = 7
for j = 1, m do
  local count = tonumber(ARGV[a + 1])
  local first, last = a + 3, a + 2 + count
  local prev = redis.call('GET', KEYS[5 + j])
  if prev then
    out[3 + j] = prev
  elseif not ok then
    out[3 + j] = -1
  else
    local len = add(first, last)
    count_add(policy, max, len, count)
    -- %d: tostring would write a bound of 10^14 or more as 1e+14.
    local record = string.format('%d:%d:%d:%s:%s', len, count, max, policy, ARGV[a + 2])
    redis.call('SET', KEYS[5 + j], record, 'PX', ARGV[a])
    out[3 + j] = len
  end
  a = last + 1
end
return out
