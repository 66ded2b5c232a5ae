-- A job succeeded: running → completed, with its result, an expiry on the record and a place in
-- the bounded list of recent completions. The worker that ran it may claim its next job in the
-- same round trip.
-- KEYS: running list of this process, completed list, counters, job key, pending, heartbeat key
--       of this process
-- ARGV: id, result JSON ('' = none), record TTL seconds, completed list length, key prefix,
--       jobs to claim next (0 or 1), claim number
-- Returns: {1, claimed job...} (7 entries per claimed job, as claim() gives them), or {0} when
--          this process no longer holds this claim of the job (see release() in common.lua).
if not release(KEYS[1], KEYS[4], ARGV[1], ARGV[7]) then
  return {0}
end
local now = now_us()
if ARGV[2] ~= '' then
  redis.call('HSET', KEYS[4], 'status', 'completed', 'completed_at', now, 'updated_at', now,
    'result', ARGV[2])
else
  redis.call('HSET', KEYS[4], 'status', 'completed', 'completed_at', now, 'updated_at', now)
end
redis.call('EXPIRE', KEYS[4], ARGV[3])
-- The list of recent completions is trimmed in steps, not on every push.
local keep = tonumber(ARGV[4])
if redis.call('LPUSH', KEYS[2], ARGV[1]) > keep + 100 then
  redis.call('LTRIM', KEYS[2], 0, keep - 1)
end
redis.call('HINCRBY', KEYS[3], 'completed', 1)
return extend({1}, claim_after_ack(KEYS[5], KEYS[1], KEYS[6], KEYS[3], ARGV[5], tonumber(ARGV[6]), now))
