-- One tick of a schedule, or a trigger: the check that this tick is still to be made (its
-- fire time and the schedule's revision unchanged, so of the processes that computed the same
-- tick exactly one acts), the rules for overlap, missed ticks and a full queue, the new job,
-- the last run and the next fire time, all in one step.
-- KEYS: counters, the schedule's hash, the due set, the new job's record
-- ARGV: key prefix, max jobs per queue, name, mode ('tick' or 'trigger'),
--       fire time µs the caller expects, revision it read, next fire time µs after it,
--       first fire time µs after now (for missed ticks), ticks from the expected one up to that
--       one, grace µs, overlap ('allow' | 'skip'), missed ('skip' | 'run_once'),
--       then the job: id, type, payload, max_attempts, timeout_secs ('' = none), queue,
--       priority, group ('' = none), then the job TTL in seconds (for the journal, see
--       insert_done)
-- Returns: {'gone'} (another process made this tick, or the schedule changed or went),
--          {'early'}, {'fired', id}, {'caught_up', id, ticks missed}, {'skipped', running id},
--          {'missed', ticks, reason ('late' or 'queue_full')}, {'full'} (trigger only)
local P, max, name, mode = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local expected, rev, nxt = tonumber(ARGV[5]), ARGV[6], ARGV[7]
local future, ticks, grace = ARGV[8], tonumber(ARGV[9]), tonumber(ARGV[10])
local overlap, missed = ARGV[11], ARGV[12]
local id, kind, payload, attempts, timeout = ARGV[13], ARGV[14], ARGV[15], ARGV[16], ARGV[17]
local q, lv, g = ARGV[18], ARGV[19], ARGV[20]
local h, due, key = KEYS[2], KEYS[3], KEYS[4]
local now = now_us()

-- The job, as create.lua writes one (insert.lua), with the schedule's name and the tick's fire
-- time on its record; false when its queue has no room.
local function make_job(fire_at)
  local new_queues, full = room(P, {[q] = 1}, max)
  if full then
    return false
  end
  local st = insert_state()
  insert_job(P, st, now, id, key, kind, payload, attempts, now, timeout, q, lv, g,
    {schedule = name})
  redis.call('HSET', key, 'scheduled_for', fire_at)
  insert_done(P, st, KEYS[1], new_queues, now, ARGV[21])
  return true
end

-- Ticks that made no job: an event when a subscription wants it (see events.lua).
local function missed_event(n, reason)
  if wants(P, 'schedule.missed', q, kind) then
    events().emit(P, {k = 'schedule.missed', n = name, ticks = n, reason = reason, q = q,
      t = kind, f = string.format('%.0f', expected)}, now)
  end
end

local function record(fire_at, how)
  redis.call('HSET', h, 'last_fire', fire_at, 'last_job', id, 'last_at', now, 'last_kind', how)
end

if mode == 'trigger' then
  if redis.call('EXISTS', h) == 0 then
    return {'gone'}
  end
  if not make_job(now) then
    return {'full'}
  end
  record(now, 'trigger')
  redis.call('HINCRBY', h, 'triggers', 1)
  return {'fired', id}
end

if redis.call('HGET', h, 'rev') ~= rev or tonumber(redis.call('ZSCORE', due, name)) ~= expected
then
  return {'gone'}
end
if expected > now then
  return {'early'}
end
local how, skipped = 'tick', 0
if now - expected > grace then
  -- Every process was away (or stalled) past the grace: the ticks from this one up to now are
  -- missed together, and the rhythm resumes with the first tick still to come.
  redis.call('ZADD', due, future, name)
  if missed == 'skip' then
    redis.call('HINCRBY', h, 'misses', ticks)
    missed_event(ticks, 'late')
    return {'missed', ticks, 'late'}
  end
  how, skipped = 'catch_up', ticks - 1
else
  redis.call('ZADD', due, nxt, name)
end
if skipped > 0 then
  redis.call('HINCRBY', h, 'misses', skipped)
end
if overlap == 'skip' then
  local last = redis.call('HGET', h, 'last_job')
  local st = last and redis.call('HGET', P .. ':job:' .. last, 'status')
  if st == 'pending' or st == 'running' or st == 'waiting' then
    redis.call('HINCRBY', h, 'skips', 1)
    return {'skipped', last, skipped}
  end
end
if not make_job(expected) then
  redis.call('HINCRBY', h, 'misses', 1)
  missed_event(skipped + 1, 'queue_full')
  return {'missed', skipped + 1, 'queue_full'}
end
record(expected, how)
redis.call('HINCRBY', h, 'fires', 1)
if how == 'catch_up' then
  return {'caught_up', id, skipped}
end
return {'fired', id}
