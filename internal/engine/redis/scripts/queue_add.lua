-- queue_add.lua: push a batch of items onto a queue, applying its bound
-- and overflow policy to each item in order, as one atomic step.
--
-- KEYS[1]  the queue list
-- KEYS[2]  the queue's overflow DLQ list
-- KEYS[3]  the queue's settings hash (see settings.lua)
-- KEYS[4]  the queue's scheduled items (see scheduled.lua)
-- KEYS[5]  the queue's delivery counter (numbers scheduled items)
-- KEYS[6]  the queue's stats hash (see stats.lua)
-- ARGV[1]  the call's policy: "reject", "dlq" or "drop_oldest" (normalized
--          by the caller)
-- ARGV[2]  the call's max size; <= 0 means unbounded
-- ARGV[3]  the queue's name, JSON-quoted Python style (for DLQ envelopes)
-- ARGV[4]  flags, one character each: "1" when the call's max size was
--          given explicitly, "1" when its policy was, "1" when the caller
--          last found this queue full under reject (see below)
-- ARGV[5]  "" for items to push now, or the delay in ms after which they
--          become visible (they are scheduled: scheduled.lua)
-- ARGV[6..] the items, already encoded
--
-- The declared bound and policy, when the queue has them, win over the
-- call's (resolve_bound, settings.lua); the one HMGET is this script's
-- only extra cost over an undeclared add.
--
-- Returns {0, length before the batch (visible plus scheduled items, as
-- the bound counts them), max size applied, policy applied},
-- or {1, declared max_size, declared policy} when the call's explicit
-- values conflict with the declared ones (nothing written). Each item's
-- outcome (accepted, length after, dropped, moved) follows from the length
-- before, the policy and the max alone, so the caller derives it
-- (engine.SimulateAdd, which must agree with the arithmetic below) instead
-- of receiving four integers per item.
--
-- Item by item, a full queue evicts len - max + 1 items (the first time;
-- one per item after that) before the push. With pushes at the tail and
-- evictions at the head, that leaves the same list, and evicts the same
-- items in the same order, as pushing the whole batch and then evicting
-- max(0, len + n - max) items at once. Under reject, only the first
-- max - len items fit; every later one is rejected. With no bound
-- everything is pushed.

local ok, max, policy = resolve_bound(KEYS[3], ARGV[1], tonumber(ARGV[2]), ARGV[4])
if not ok then
  return {1, max, policy}
end
local first, last = 6, #ARGV
local n = last - first + 1
local chunk = 1000

-- Scheduled items, or a queue holding some, take the item-by-item path
-- (scheduled.lua); the one EXISTS is what other adds pay for them.
if ARGV[5] ~= '' or redis.call('EXISTS', KEYS[4]) == 1 then
  local at = nil
  if ARGV[5] ~= '' then at = server_ms() + tonumber(ARGV[5]) end
  local before = add_each(KEYS[1], KEYS[2], KEYS[4], KEYS[5], ARGV[3], first, last, max, policy, at)
  count_add(policy, max, before, n)
  return {0, before, max, policy}
end

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
-- queue that is likely full (flag 3) that would be two calls and items
-- copied for nothing, so there reject reads the length first.
local len, evict = 0, 0
if max > 0 and policy == 'reject' and string.sub(ARGV[4], 3, 3) == '1' then
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

count_add(policy, max, len, n)
return {0, len, max, policy}
