-- An attempt failed: running → scheduled (a retry after the backoff) or, after the last attempt
-- or on a permanent error, → failed and the dead-letter queue, where the record never expires.
-- A snooze ("not now, try again in D") goes back to scheduled without using up the attempt,
-- until the job has been snoozed max_snoozes times; past that it counts as a failed attempt.
-- In the common case the worker claims its next job in the same round trip.
-- KEYS: running list of this process, dlq, counters, job key, heartbeat key of this process
-- ARGV: key prefix, id, error message, delay ms (retry or snooze), mode ('retry', 'permanent'
--       or 'snooze'), DLQ cap, jobs to claim next (0 or 1), claim number, the job's queue,
--       type and group, max snoozes, then the selection for the next claim
-- Returns: {code, due_us, breaker change ('opened', 'closed' or ''), number of evicted ids,
--          evicted ids..., n, event... (5n entries, see finish.lua), claimed job...} where code
--          is 1 for a retry, 3 for a snooze (due_us: when), 2 when dead (evicted: the oldest
--          DLQ entries dropped past the cap) and 4 when cancelled (its cancellation was asked
--          for while it ran: no retry, no DLQ); {0} when this process no longer holds this
--          claim of the job.
local c = new_acks(KEYS[5])
local out = fail_job(KEYS, ARGV, {unpack(ARGV, 13)}, c)
flush_acks(c, nil)
return out
