-- dlq_remove: delete one DLQ entry, only if it is still where it was read.
--
-- KEYS[1]  the DLQ (list)
-- ARGV[1]  index of the entry (0 is the oldest)
-- ARGV[2]  the entry as it was read
-- ARGV[3]  a marker no entry holds (a random value per call)
--
-- Returns 1 when the entry was deleted, 0 when the entry at the index is
-- another one (the list shifted) or there is none. LSET puts the marker in
-- its place and LREM takes the first (the only) marker out: Redis has no
-- command that removes by index.

local v = redis.call('LINDEX', KEYS[1], ARGV[1])
if v ~= ARGV[2] then
  return 0
end
redis.call('LSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('LREM', KEYS[1], 1, ARGV[3])
return 1
