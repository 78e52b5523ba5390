-- scheduled.lua: shared functions, prepended to the scripts that add items
-- (after envelope.lua and settings.lua) and to those that release due
-- scheduled items (lease_receive.lua, queue_pop.lua). It defines no KEYS or
-- ARGV and returns nothing.
--
-- Scheduled items (engine.AddParams.NotBefore) wait in a zset beside the
-- queue (keyspace.Queue.Scheduled) as "<seq>:<item>", scored by their
-- not-before time in ms of the server's clock; seq, drawn from the queue's
-- delivery counter, keeps equal items apart. They count toward the bound
-- from the moment they are accepted, and move to the queue's tail once due.

-- add_each adds ARGV[first..last] one by one, the path an add takes when
-- the queue has scheduled items or the items are scheduled (at: not-before
-- in ms; nil pushes to the tail). The bound counts visible plus scheduled
-- items. A full queue under dlq or drop_oldest evicts from the queue's
-- head, or, with no visible item left, the scheduled item due soonest;
-- under reject the item is refused. This is engine.SimulateAdd's
-- arithmetic on that total. Returns the total before the first item.
local function add_each(k_list, k_ovf, k_sched, k_seq, queue_json, first, last, max, policy, at)
  local len = redis.call('LLEN', k_list)
  local sched = redis.call('ZCARD', k_sched)
  local before = len + sched
  for i = first, last do
    local room = max <= 0 or len + sched < max
    if not room and (policy == 'dlq' or policy == 'drop_oldest') then
      for _ = 1, len + sched - max + 1 do
        local victim
        if len > 0 then
          victim, len = redis.call('LPOP', k_list), len - 1
        else
          local m = redis.call('ZPOPMIN', k_sched)
          victim, sched = string.match(m[1], '^%d+:(.*)$'), sched - 1
        end
        if policy == 'dlq' then
          redis.call('RPUSH', k_ovf, envelope().overflow(queue_json, victim))
        end
      end
      room = true
    end
    if room and at then
      local member = redis.call('INCR', k_seq) .. ':' .. ARGV[i]
      redis.call('ZADD', k_sched, at, member)
      sched = sched + 1
    elseif room then
      len = redis.call('RPUSH', k_list, ARGV[i])
    end
  end
  return before
end

-- release_due moves every scheduled item due at now (ms) to the queue's
-- tail, soonest first, and returns how many moved.
local function release_due(k_sched, k_list, now)
  local moved = 0
  while true do
    local due = redis.call('ZRANGEBYSCORE', k_sched, '-inf', now, 'LIMIT', 0, 1000)
    if #due == 0 then return moved end
    local items = {}
    for j = 1, #due do items[j] = string.match(due[j], '^%d+:(.*)$') end
    redis.call('RPUSH', k_list, unpack(items))
    redis.call('ZREM', k_sched, unpack(due))
    moved = moved + #due
  end
end

-- server_ms is the server's clock in ms, the clock every deadline uses.
local function server_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
