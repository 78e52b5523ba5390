-- dlq_requeue.lua: move dead-letter entries, oldest first, back to the tail
-- of their queue, each subject to the queue's overflow policy, as one
-- atomic step.
--
-- KEYS[1]  the queue list
-- KEYS[2]  the DLQ to requeue from (overflow or failed)
-- KEYS[3]  the queue's overflow DLQ (where the dlq policy evicts to)
-- KEYS[4]  the queue's settings hash (see settings.lua)
-- KEYS[5]  the queue's scheduled items, which count toward the bound and,
--          with no visible item left, are evicted soonest-due first
--          (scheduled.lua)
-- KEYS[6]  the queue's stats hash (see stats.lua)
-- ARGV[1]  how many entries to requeue; <= 0 means every entry present now
-- ARGV[2]  the call's policy: "reject", "dlq" or "drop_oldest"
-- ARGV[3]  the call's max size; <= 0 means unbounded
-- ARGV[4]  the queue's name, JSON-quoted Python style
-- ARGV[5]  flags: "1" at position 1 when the max size was given
--          explicitly, at position 2 when the policy was (settings.lua)
--
-- The queue's declared bound and policy win over the call's, as for an
-- add (resolve_bound). Returns {requeued, remaining in the DLQ, displaced},
-- or {-1, declared max_size, declared policy} when the call's explicit
-- values conflict with the declared ones (nothing moved). displaced counts
-- queue items the policy dropped or moved to the overflow DLQ.
--
-- An entry is unwrapped to its "data" string; a failed-job entry without
-- one (as the Python service writes them) falls back to "original_job": a
-- string as is, an object or array as the exact text it has in the entry,
-- which is what the Python service had pushed (same json.dumps).
-- Entries that cannot be unwrapped (not JSON, no usable field) are never
-- requeued and never lost: they stay at the head of the DLQ, in their
-- order, and the requeue continues past them. Under reject, the first entry
-- that does not fit stays where it was and the requeue stops.

local want = tonumber(ARGV[1])
local ok, max, policy = resolve_bound(KEYS[4], ARGV[2], tonumber(ARGV[3]), ARGV[5])
if not ok then
  return {-1, max, policy}
end
local queue_json = ARGV[4]

-- Bound the scan by the DLQ's length now: under the dlq policy, requeuing
-- from the overflow DLQ into a full queue refills that same DLQ.
local budget = redis.call('LLEN', KEYS[2])

local function unwrap(entry)
  local ok, doc = pcall(cjson.decode, entry)
  if not ok or type(doc) ~= 'table' then return nil end
  if type(doc.data) == 'string' then return doc.data end
  local orig = doc.original_job
  if type(orig) == 'string' then return orig end
  if type(orig) == 'table' then
    return envelope().field_raw(entry, 'original_job') or cjson.encode(orig)
  end
  return nil
end

local requeued, displaced = 0, 0
local skipped = {}
local sched = redis.call('ZCARD', KEYS[5])
local len = redis.call('LLEN', KEYS[1]) + sched
while budget > 0 and (want <= 0 or requeued < want) do
  local entry = redis.call('LPOP', KEYS[2])
  if not entry then break end
  budget = budget - 1
  local item = unwrap(entry)
  if item == nil then
    skipped[#skipped + 1] = entry
  elseif max > 0 and len >= max and policy ~= 'dlq' and policy ~= 'drop_oldest' then
    redis.call('LPUSH', KEYS[2], entry)
    break
  else
    if max > 0 and len >= max then
      local n = len - max + 1
      local evicted = redis.call('LPOP', KEYS[1], n) or {}
      while #evicted < n and sched > 0 do
        local m = redis.call('ZPOPMIN', KEYS[5])
        evicted[#evicted + 1] = string.match(m[1], '^%d+:(.*)$')
        sched = sched - 1
      end
      if policy == 'dlq' then
        for j = 1, #evicted do
          redis.call('RPUSH', KEYS[3], envelope().overflow(queue_json, evicted[j]))
        end
      end
      displaced = displaced + #evicted
      len = len - #evicted
    end
    len = redis.call('RPUSH', KEYS[1], item) + sched
    requeued = requeued + 1
  end
end

for j = #skipped, 1, -1 do
  redis.call('LPUSH', KEYS[2], skipped[j])
end

stat(policy == 'dlq' and 'moved' or 'dropped', displaced)
return {requeued, redis.call('LLEN', KEYS[2]), displaced}
