-- queue_pop.lua: take items from the head of a queue unless it is paused,
-- as one atomic step.
--
-- KEYS[1]  the queue list
-- KEYS[2]  the queue's settings hash (see settings.lua)
-- KEYS[3]  the queue's scheduled items: due ones move to the tail first
--          (scheduled.lua)
-- KEYS[4]  the queue's stats hash (see stats.lua)
-- ARGV[1]  how many items to take at most (>= 1)
--
-- Returns {1} when the queue is paused (nothing taken), else {0, items...}
-- (just {0} when the queue is empty).

if redis.call('HGET', KEYS[2], 'paused') == '1' then
  return {1}
end
release_due(KEYS[3], KEYS[1], server_ms())
local items = redis.call('LPOP', KEYS[1], tonumber(ARGV[1]))
local out = {0}
if items then
  stat('delivered', #items)
  for i = 1, #items do out[i + 1] = items[i] end
end
return out
