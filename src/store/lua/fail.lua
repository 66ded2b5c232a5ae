-- An attempt failed: running → scheduled (a retry after the backoff) or, after the last attempt
-- or on a permanent error, → failed and the dead-letter queue, where the record never expires.
-- KEYS: running list of this process, scheduled, dlq, counters, job key
-- ARGV: id, error message, retry delay ms, permanent ('1' or '0')
-- Returns: {1, due_ms} for a retry, {2, now_ms} when dead, {0, 0} when this process no longer
--          owns the job.
if redis.call('LREM', KEYS[1], -1, ARGV[1]) == 0 then
  return {0, 0}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local attempt = tonumber(redis.call('HGET', KEYS[5], 'attempt') or '1')
local max = tonumber(redis.call('HGET', KEYS[5], 'max_attempts') or '1')
redis.call('HSET', KEYS[5], 'error', ARGV[2], 'updated_at', now)
redis.call('HINCRBY', KEYS[4], 'running', -1)
if ARGV[4] ~= '1' and attempt < max then
  local due = now + tonumber(ARGV[3])
  redis.call('HSET', KEYS[5], 'status', 'pending', 'run_at', due)
  redis.call('ZADD', KEYS[2], due, ARGV[1])
  return {1, due}
end
redis.call('HSET', KEYS[5], 'status', 'failed', 'completed_at', now)
redis.call('PERSIST', KEYS[5])
redis.call('ZADD', KEYS[3], now, ARGV[1])
redis.call('HINCRBY', KEYS[4], 'dead', 1)
return {2, now}
