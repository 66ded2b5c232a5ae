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
local P, id = ARGV[1], ARGV[2]
local f = release(KEYS[1], KEYS[4], id, ARGV[7])
if not f then
  return {0}
end
local now = now_us()
local ev = {}
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[4], 'status', 'completed', 'completed_at', now, 'updated_at', now,
    'result', ARGV[3])
else
  redis.call('HSET', KEYS[4], 'status', 'completed', 'completed_at', now, 'updated_at', now)
end
redis.call('EXPIRE', KEYS[4], ARGV[4])
-- The list of recent completions is trimmed in steps, not on every push.
local keep = tonumber(ARGV[5])
if redis.call('LPUSH', KEYS[2], id) > keep + 100 then
  redis.call('LTRIM', KEYS[2], 0, keep - 1)
end
redis.call('HINCRBY', KEYS[3], 'completed', 1)
-- The queue's running total, for GET /stats/history.
redis.call('HINCRBY', qk(P, ARGV[8], 'meta'), 'completed', 1)
if has_ties(f) then
  finish().settle(P, KEYS[4], id, true, now, ev, f)
end
local sel = {unpack(ARGV, 11)}
if ARGV[6] == '1' and ARGV[10] == '' then
  local job = next_fast(P, KEYS[1], KEYS[5], sel, now, ARGV[8], ARGV[9], ev)
  if job then
    return extend(extend({1, '', #ev / 5}, ev), job)
  end
end
-- Otherwise no next job here: the worker asks its fetcher, whose claim takes every rule into
-- account. The finished job leaves the running counts, and waiting processes are told (it
-- may have held a slot one of them waits for).
local d = {}
bump_running(d, P, ARGV[8], ARGV[9], ARGV[10], -1)
bump(d, KEYS[3], 'running', -1)
local changed = type_after(P, ARGV[9], id, 'ok', now, d)
flush(d)
wake(P)
return extend({1, changed or '', #ev / 5}, ev)
