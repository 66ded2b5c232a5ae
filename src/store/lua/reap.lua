-- Recover the jobs of a worker process whose heartbeat has expired. The heartbeat is checked here,
-- inside the same atomic step, so a process that came back a moment ago keeps its jobs.
-- Each recovered job counts as a failed attempt, so a job that keeps killing its process ends in
-- the dead-letter queue instead of looping forever. The concurrency slots the jobs held are
-- released with them.
-- KEYS: workers set, dlq, counters, heartbeat key of the process, its running list
-- ARGV: key prefix, process id, error message, DLQ cap
-- A job whose cancellation was asked for while it ran ends cancelled instead.
-- Returns: {requeued ids..., '|', dead ids..., '|', evicted ids..., '|', queue, type of each
--          requeued then dead job, '|', event... (5 entries each, see finish.lua)}, or false
--          when alive
local P = ARGV[1]
if redis.call('EXISTS', KEYS[4]) == 1 then
  return false
end
local now = now_us()
local ids = redis.call('LRANGE', KEYS[5], 0, -1)
local requeued, dead, evicted = {}, {}, {}
local where_r, where_d, ev = {}, {}, {}
for _, id in ipairs(ids) do
  local key = P .. ':job:' .. id
  local q, t, g = placement(key)
  local d = {}
  bump_running(d, P, q, t, g, -1)
  local attempt = tonumber(redis.call('HGET', key, 'attempt') or '1')
  local max = tonumber(redis.call('HGET', key, 'max_attempts') or '1')
  push_error(key, ARGV[3], now)
  if redis.call('HEXISTS', key, 'cancel') == 1 then
    finish().end_cancelled(P, key, id, q, t, now, ev)
  elseif attempt < max then
    make_ready(P, key, id, false, now)
    bump(d, qk(P, q, 'meta'), 'pending', 1)
    bump(d, qk(P, q, 'meta'), 'retried', 1)
    bump(d, KEYS[3], 'retried', 1)
    requeued[#requeued + 1] = id
    extend(where_r, {q, t})
    if wants(P, 'job.failed', q, t) then
      events().job(P, 'job.failed', key, id, q, t, now, {e = ARGV[3],
        d = string.format('%.0f', now)})
    end
  else
    dead[#dead + 1] = id
    extend(where_d, {q, t})
    extend(evicted, bury(KEYS[2], KEYS[3], P, id, now, tonumber(ARGV[4])))
    if wants(P, 'job.dead', q, t) then
      events().job(P, 'job.dead', key, id, q, t, now, {e = ARGV[3]})
    end
    finish().settle(P, key, id, false, now, ev)
  end
  flush(d)
  type_after(P, t, id, nil, now, {})
end
redis.call('DEL', KEYS[5])
redis.call('SREM', KEYS[1], ARGV[2])
redis.call('SREM', P .. ':waiters', ARGV[2])
redis.call('DEL', P .. ':wake:' .. ARGV[2])
if #ids > 0 then
  redis.call('HINCRBY', KEYS[3], 'running', -#ids)
  wake(P)
end
local out = requeued
out[#out + 1] = '|'
extend(out, dead)
out[#out + 1] = '|'
extend(out, evicted)
out[#out + 1] = '|'
extend(out, where_r)
extend(out, where_d)
out[#out + 1] = '|'
extend(out, ev)
return out
