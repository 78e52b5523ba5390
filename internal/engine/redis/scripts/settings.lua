-- settings.lua: shared function, prepended to the scripts that add items
-- to a queue (queue_add.lua, queue_add_keyed.lua, dlq_requeue.lua). It
-- defines no KEYS or ARGV and returns nothing.
--
-- A queue's declared settings are a hash beside its keys, in its hash slot
-- (keyspace.Queue.Settings): fields max_size (a bound > 0, or -1 for none),
-- policy, pressure, lease_ms, max_deliveries and paused ("1"); a field that
-- is absent is not declared.
--
-- resolve_bound mirrors engine.QueueSettings.Resolve: declared values win;
-- a value the caller gave explicitly (flags: "1" at position 1 for the
-- bound, at position 2 for the policy) may only be stricter (a smaller
-- bound) and is otherwise a conflict. It returns true, the bound (<= 0: no
-- bound) and the policy to apply, or false and the declared max_size and
-- policy as stored ('' when absent), for the caller to report; the script
-- then writes nothing.

local function resolve_bound(settings_key, policy, max, flags)
  local d = redis.call('HMGET', settings_key, 'max_size', 'policy')
  local dmax, dpol = d[1], d[2]
  if not dmax and not dpol then
    return true, max, policy
  end
  local max_explicit = string.sub(flags, 1, 1) == '1'
  local policy_explicit = string.sub(flags, 2, 2) == '1'
  if dmax then
    local declared = math.max(tonumber(dmax), 0)
    if not max_explicit then
      max = declared
    elseif max > 0 and (declared == 0 or max <= declared) then
      -- stricter or equal: the call's own bound applies
    elseif max <= 0 and declared == 0 then
      max = 0
    else
      return false, dmax, dpol or ''
    end
  end
  if dpol then
    if policy_explicit and policy ~= dpol then
      return false, dmax or '', dpol
    end
    policy = dpol
  end
  return true, max, policy
end
