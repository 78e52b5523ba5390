-- queue_pop_check.lua: settle an item a blocking pop (BLPOP) took, which
-- may have been blocked since before the queue was paused. The pop runs it
-- only when the read of the paused flag pipelined behind its BLPOP saw the
-- queue paused: when the queue is paused still, the item goes back to the
-- head, where it was, in the same atomic step as the check.
--
-- KEYS[1]  the queue list
-- KEYS[2]  the queue's settings hash (see settings.lua)
-- KEYS[3]  the queue's stats hash (see stats.lua)
-- ARGV[1]  the item
--
-- Returns 1 when the item was put back (the pop hands nothing out), else 0
-- (the pop keeps it).

if redis.call('HGET', KEYS[2], 'paused') == '1' then
  redis.call('LPUSH', KEYS[1], ARGV[1])
  return 1
end
stat('delivered', 1)
return 0
