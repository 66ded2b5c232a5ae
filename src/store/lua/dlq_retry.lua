-- Send dead-letter jobs back to pending with their attempts reset; the error history stays.
-- KEYS: dlq, pending
-- ARGV: key prefix, mode ('id' or 'type' or 'all'), the id or the type ('' for all)
-- Returns: the ids sent back
local now = now_us()
local ids = take_from_dlq(KEYS[1], ARGV[1], ARGV[2], ARGV[3])
for _, id in ipairs(ids) do
  local key = ARGV[1] .. ':job:' .. id
  redis.call('HSET', key, 'status', 'pending', 'attempt', 0, 'updated_at', now)
  redis.call('HDEL', key, 'completed_at', 'started_at', 'run_at')
  redis.call('RPUSH', KEYS[2], id)
end
return ids
