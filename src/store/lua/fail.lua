-- An attempt failed: running → scheduled (a retry after the backoff) or, after the last attempt
-- or on a permanent error, → failed and the dead-letter queue, where the record never expires.
-- KEYS: running list of this process, scheduled, dlq, counters, job key
-- ARGV: id, error message, retry delay ms, permanent ('1' or '0'), key prefix, DLQ cap
-- Returns: {1, due_ms} for a retry; {2, now_ms, evicted ids...} when dead (evicted: the oldest
--          DLQ entries dropped past the cap); {0, 0} when this process no longer owns the job.
if redis.call('LREM', KEYS[1], -1, ARGV[1]) == 0 then
  return {0, 0}
end
local now = now_ms()
local attempt = tonumber(redis.call('HGET', KEYS[5], 'attempt') or '1')
local max = tonumber(redis.call('HGET', KEYS[5], 'max_attempts') or '1')
push_error(KEYS[5], ARGV[2], now)
redis.call('HINCRBY', KEYS[4], 'running', -1)
if ARGV[4] ~= '1' and attempt < max then
  local due = now + tonumber(ARGV[3])
  redis.call('HSET', KEYS[5], 'status', 'pending', 'run_at', due)
  redis.call('ZADD', KEYS[2], due, ARGV[1])
  return {1, due}
end
local out = {2, now}
for _, id in ipairs(bury(KEYS[3], KEYS[4], ARGV[5], ARGV[1], now, tonumber(ARGV[6]))) do
  out[#out + 1] = id
end
return out
