-- Delete dead-letter jobs: their DLQ entries and their records.
-- KEYS: dlq
-- ARGV: key prefix, mode ('id' or 'type' or 'all'), the id or the type ('' for all)
-- Returns: the number deleted
local ids = take_from_dlq(KEYS[1], ARGV[1], ARGV[2], ARGV[3])
for _, id in ipairs(ids) do
  redis.call('DEL', ARGV[1] .. ':job:' .. id)
end
return #ids
