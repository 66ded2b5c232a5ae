-- The maintenance tick: moves scheduled jobs (delayed, waiting out a retry backoff, snoozed or
-- over their type's rate) that are due into their queues' ready lists, and jobs set aside for
-- their type back when the reason has passed. "Due" is judged by Redis's clock, so a host with
-- a skewed clock cannot run a job early. Also serves jobs left in the single-queue layout of
-- earlier releases (P:pending, P:scheduled): they move into queue 'default', so processes of
-- both releases can share one Redis during an upgrade.
-- KEYS: counters
-- ARGV: key prefix, most jobs to move
-- Returns: {jobs moved, due time of the next scheduled job or breaker cool-down in µs or -1,
--           Redis time in µs}
local P = ARGV[1]
local budget = tonumber(ARGV[2])
local now = now_us()
local moved = 0
local d = {}
-- The layout of earlier releases.
local old_pending, old_scheduled = P .. ':pending', P .. ':scheduled'
if redis.call('EXISTS', old_pending, old_scheduled) > 0 then
  redis.call('SADD', P .. ':queues', 'default')
  if redis.call('SCARD', P .. ':types-active') > 0 then
    redis.call('HSET', qk(P, 'default', 'meta'), 'typed', 1)
  end
  local ids = redis.call('LRANGE', old_pending, 0, budget - 1)
  for _, id in ipairs(ids) do
    push_ready(P, 'default', '', 'normal', id, false)
  end
  if #ids > 0 then
    redis.call('LTRIM', old_pending, #ids, -1)
    bump(d, qk(P, 'default', 'meta'), 'pending', #ids)
    moved = moved + #ids
  end
  local sched = redis.call('ZRANGE', old_scheduled, 0, budget - 1, 'WITHSCORES')
  for i = 1, #sched, 2 do
    redis.call('ZADD', qk(P, 'default', 'scheduled'), sched[i + 1], sched[i])
    redis.call('ZREM', old_scheduled, sched[i])
  end
end
local next_due = -1
for _, q in ipairs(redis.call('SMEMBERS', P .. ':queues')) do
  local sk = qk(P, q, 'scheduled')
  local due = redis.call('ZRANGEBYSCORE', sk, '-inf', now, 'WITHSCORES', 'LIMIT', 0,
    math.max(budget - moved, 0))
  for i = 1, #due, 2 do
    local id = due[i]
    local key = P .. ':job:' .. id
    redis.call('ZREM', sk, id)
    local _, _, g, lv = placement(key)
    push_ready(P, q, g, lv, id, false)
    -- Ready since it was due: the queue's latency counts from then.
    redis.call('HSET', key, 'updated_at', due[i + 1])
    redis.call('HDEL', key, 'run_at', 'parked')
  end
  if #due > 0 then
    bump(d, qk(P, q, 'meta'), 'pending', #due / 2)
    moved = moved + #due / 2
  end
  local nxt = redis.call('ZRANGE', sk, 0, 0, 'WITHSCORES')
  if nxt[2] and (next_due < 0 or tonumber(nxt[2]) < next_due) then
    next_due = tonumber(nxt[2])
  end
end
flush(d)
for _, t in ipairs(redis.call('SMEMBERS', P .. ':parked-types')) do
  local n, until_us = unpark_type(P, t, math.max(budget - moved, 0), now)
  moved = moved + n
  if until_us and (next_due < 0 or until_us < next_due) then
    next_due = until_us
  end
end
if moved > 0 then
  wake(P)
end
return {moved, next_due, now}
