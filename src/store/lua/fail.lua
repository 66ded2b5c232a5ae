-- An attempt failed: running → scheduled (a retry after the backoff) or, after the last attempt
-- or on a permanent error, → failed and the dead-letter queue, where the record never expires.
-- The worker may claim its next job in the same round trip.
-- KEYS: running list of this process, scheduled, dlq, counters, job key, pending, heartbeat key
--       of this process
-- ARGV: id, error message, retry delay ms, permanent ('1' or '0'), key prefix, DLQ cap,
--       jobs to claim next (0 or 1), claim number
-- Returns: {code, due_us, number of evicted ids, evicted ids..., claimed job...} where code is 1
--          for a retry (due_us: when) and 2 when dead (evicted: the oldest DLQ entries dropped
--          past the cap); {0} when this process no longer holds this claim of the job.
if not release(KEYS[1], KEYS[5], ARGV[1], ARGV[8]) then
  return {0}
end
local now = now_us()
local attempt = tonumber(redis.call('HGET', KEYS[5], 'attempt') or '1')
local max = tonumber(redis.call('HGET', KEYS[5], 'max_attempts') or '1')
push_error(KEYS[5], ARGV[2], now)
local out
if ARGV[4] ~= '1' and attempt < max then
  local due = now + tonumber(ARGV[3]) * 1000
  redis.call('HSET', KEYS[5], 'status', 'pending', 'run_at', due)
  redis.call('ZADD', KEYS[2], due, ARGV[1])
  out = {1, due, 0}
else
  local evicted = bury(KEYS[3], KEYS[4], ARGV[5], ARGV[1], now, tonumber(ARGV[6]))
  out = extend({2, now, #evicted}, evicted)
end
return extend(out, claim_after_ack(KEYS[6], KEYS[1], KEYS[7], KEYS[4], ARGV[5], tonumber(ARGV[7]), now))
