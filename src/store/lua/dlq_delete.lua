-- Delete dead-letter jobs: their DLQ entries and their records.
-- KEYS: dlq
-- ARGV: key prefix, mode ('id', 'ids', 'type', 'all' or 'group'), the id, the ids
--       (comma-separated), the type or the fingerprint ('' for all), for a group the latest
--       DLQ time to take (µs or '+inf')
-- Returns: the number deleted
local P = ARGV[1]
if ARGV[2] == 'group' then
  index_legacy(KEYS[1], P, 1000)
end
local ids = take_from_dlq(KEYS[1], P, ARGV[2], ARGV[3], ARGV[4])
local d = {}
for _, id in ipairs(ids) do
  local key = P .. ':job:' .. id
  bump(d, qk(P, (placement(key)), 'meta'), 'failed', -1)
  redis.call('DEL', key)
end
flush(d)
return #ids
