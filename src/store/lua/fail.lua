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
local P, id, key = ARGV[1], ARGV[2], KEYS[4]
local f = release(KEYS[1], key, id, ARGV[8])
if not f then
  return {0}
end
local now = now_us()
local q, t, g = ARGV[9], ARGV[10], ARGV[11]
local mode = ARGV[5]
local d, ev = {}, {}
bump_running(d, P, q, t, g, -1)
local out, outcome
if f[5] then
  push_error(key, ARGV[3], now)
  finish().end_cancelled(P, key, id, q, t, now, ev)
  out = {4, now}
elseif mode == 'snooze' then
  local snoozes = tonumber(redis.call('HGET', key, 'snoozes') or '0')
  if snoozes < tonumber(ARGV[12]) then
    local due = now + tonumber(ARGV[4]) * 1000
    redis.call('HSET', key, 'status', 'pending', 'run_at', due, 'updated_at', now,
      'snoozes', snoozes + 1, 'parked', 'snoozed')
    redis.call('HINCRBY', key, 'attempt', -1)
    redis.call('ZADD', qk(P, q, 'scheduled'), due, id)
    out = {3, due}
  else
    mode = 'retry'
    ARGV[3] = 'snoozed ' .. snoozes .. ' times (MAX_SNOOZES): counted as a failed attempt; ' ..
      ARGV[3]
  end
end
if not out then
  outcome = 'fail'
  local attempt = tonumber(redis.call('HGET', key, 'attempt') or '1')
  local max = tonumber(redis.call('HGET', key, 'max_attempts') or '1')
  push_error(key, ARGV[3], now)
  if mode ~= 'permanent' and attempt < max then
    local due = now + tonumber(ARGV[4]) * 1000
    redis.call('HSET', key, 'status', 'pending', 'run_at', due)
    redis.call('ZADD', qk(P, q, 'scheduled'), due, id)
    redis.call('HINCRBY', KEYS[3], 'retried', 1)
    redis.call('HINCRBY', qk(P, q, 'meta'), 'retried', 1)
    out = {1, due}
  else
    out = {2, now}
  end
end
local changed = type_after(P, t, id, outcome, now, d)
out[3] = changed or ''
if out[1] == 2 then
  local evicted = bury(KEYS[2], KEYS[3], P, id, now, tonumber(ARGV[6]))
  out[4] = #evicted
  extend(out, evicted)
  if has_ties(f) then
    finish().settle(P, key, id, false, now, ev, f)
  end
else
  out[4] = 0
end
local sel = {unpack(ARGV, 13)}
local job
if ARGV[7] == '1' and g == '' and not types_active(P) then
  job = next_fast(P, KEYS[1], KEYS[5], sel, now, q, t, ev)
end
out[#out + 1] = #ev / 5
extend(out, ev)
if job then
  return extend(out, job)
end
-- Otherwise no next job here (the worker asks its fetcher): the counts move and waiting
-- processes are told, as in complete.lua.
bump(d, KEYS[3], 'running', -1)
flush(d)
wake(P)
return out
