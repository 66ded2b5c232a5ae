-- A job succeeded: running → completed, with its result, an expiry on the record and a place in
-- the bounded list of recent completions.
-- KEYS: running list of this process, completed list, counters, job key
-- ARGV: id, result JSON ('' = none), record TTL seconds, completed list length
-- Returns: 1, or 0 when this process no longer owns the job (it was recovered elsewhere).
if redis.call('LREM', KEYS[1], -1, ARGV[1]) == 0 then
  return 0
end
local now = now_ms()
redis.call('HSET', KEYS[4], 'status', 'completed', 'completed_at', now, 'updated_at', now)
if ARGV[2] ~= '' then
  redis.call('HSET', KEYS[4], 'result', ARGV[2])
end
redis.call('EXPIRE', KEYS[4], ARGV[3])
redis.call('LPUSH', KEYS[2], ARGV[1])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[4]) - 1)
redis.call('HINCRBY', KEYS[3], 'running', -1)
redis.call('HINCRBY', KEYS[3], 'completed', 1)
return 1
