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
