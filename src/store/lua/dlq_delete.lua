-- Delete dead-letter jobs: their DLQ entries and their records.
-- KEYS: dlq
-- ARGV: key prefix, mode ('id' or 'type' or 'all'), the id or the type ('' for all)
-- Returns: the number deleted
local P = ARGV[1]
local ids = take_from_dlq(KEYS[1], P, ARGV[2], ARGV[3])
local d = {}
for _, id in ipairs(ids) do
  local key = P .. ':job:' .. id
  bump(d, qk(P, (placement(key)), 'meta'), 'failed', -1)
  redis.call('DEL', key)
end
flush(d)
return #ids
