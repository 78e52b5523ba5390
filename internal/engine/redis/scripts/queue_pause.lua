-- queue_pause.lua: pause or resume a queue, as one atomic step.
--
-- KEYS[1]  the queue's settings hash (see settings.lua)
-- KEYS[2]  the queue's wake list
-- ARGV[1]  "1" to pause, "0" to resume
--
-- Consumers that find the queue paused wait on the wake list with
-- BLMOVE wake wake: the move puts the element back where it was, so one
-- element wakes every waiter in turn and stays for later ones. Pausing
-- deletes the list (a waiter must block until the resume); resuming puts
-- one element in it. The element stays while the queue runs and costs
-- nothing; the next pause or a delete removes it.
--
-- Returns 1 when the flag changed, 0 when the queue already was so.

if ARGV[1] == '1' then
  redis.call('DEL', KEYS[2])
  return redis.call('HSET', KEYS[1], 'paused', '1')
end
if redis.call('HDEL', KEYS[1], 'paused') == 0 then
  return 0
end
redis.call('DEL', KEYS[2])
redis.call('RPUSH', KEYS[2], '1')
return 1
