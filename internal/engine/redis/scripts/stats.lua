-- stats.lua: shared functions, prepended to the scripts that do counted
-- work. It defines no KEYS or ARGV and returns nothing.
--
-- A queue's counters are a hash beside its keys, in its hash slot
-- (keyspace.Queue.Stats), with the fields of engine.StatNames. Every script
-- that uses them takes the hash as its LAST key (KEYS[#KEYS]), so that
-- adding it shifts no other key.

-- stat adds n (when positive) to the counter field.
local function stat(field, n)
  if n > 0 then redis.call('HINCRBY', KEYS[#KEYS], field, n) end
end

-- count_add counts an add of n items to a queue that held len items,
-- under bound max (<= 0: none) and policy, as engine.SimulateAdd decides
-- it: one HINCRBY when everything fits.
-- sample_head records how long the item at the head of the list has been
-- there (engine.QueueStats.HeadSince/HeadSeen): a sweep's sample, by
-- content, in the stats hash's head_* fields; now is in ms.
local function sample_head(list, now)
  local head = redis.call('LINDEX', list, 0)
  if not head then
    redis.call('HDEL', KEYS[#KEYS], 'head_sum', 'head_since', 'head_seen')
    return
  end
  local sum = redis.sha1hex(head)
  if redis.call('HGET', KEYS[#KEYS], 'head_sum') == sum then
    redis.call('HSET', KEYS[#KEYS], 'head_seen', now)
  else
    redis.call('HSET', KEYS[#KEYS], 'head_sum', sum, 'head_since', now, 'head_seen', now)
  end
end

local function count_add(policy, max, len, n)
  local over = 0
  if max > 0 then over = math.max(0, len + n - max) end
  if policy == 'dlq' or policy == 'drop_oldest' then
    stat('added', n)
    stat(policy == 'dlq' and 'moved' or 'dropped', over)
  else
    over = math.min(n, over)
    stat('added', n - over)
    stat('rejected', over)
  end
end
