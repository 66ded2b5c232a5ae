-- A job succeeded: running → completed, with its result, an expiry on the record and a place in
-- the bounded list of recent completions. In the common case (see next_fast in common.lua) the
-- worker that ran it claims its next job in the same round trip.
-- KEYS: running list of this process, completed list, counters, job key, heartbeat key of this
--       process
-- ARGV: key prefix, id, result JSON ('' = none), record TTL seconds, completed list length,
--       jobs to claim next (0 or 1), claim number, the job's queue, type and group, then the
--       selection for the next claim (see next_fast in common.lua)
-- Returns: {1, breaker change ('opened', 'closed' or ''), n, event... (5n entries, see
--          finish.lua), claimed job...} (12 entries per claimed job), or {0} when this process
--          no longer holds this claim of the job (see release() in common.lua).
-- A job whose cancellation was asked for while it ran and that finished anyway is completed:
-- its work is done.
local c = new_acks(KEYS[5])
local out = complete_job(KEYS, ARGV, {unpack(ARGV, 11)}, c)
flush_acks(c, KEYS[2])
return out
