-- Cancel jobs: by id (POST /jobs/{id}/cancel, a workflow's nodes) or by filter (POST
-- /jobs/cancel). A job that is pending, scheduled or waiting ends cancelled at once, in this
-- step, with its descendants that cannot run without it (see settle in finish.lua); a running
-- job is marked (field 'cancel', set 'P:cancelling'): the process running it stops it, and its
-- outcome is recorded as cancelled (complete, fail, reap, requeue).
-- KEYS: counters
-- ARGV: key prefix, record TTL seconds, mode, then for mode 'ids': the ids; for mode 'filter':
--       queue ('' = every queue), type ('' = any), group ('' = any), statuses (a comma list of
--       pending, scheduled, waiting, running), '1' for a dry run (count only), most jobs,
--       then needle, path, value and upto (see job_filter in select.lua)
-- Returns: mode 'ids': {id, outcome, ...} where outcome is 'cancelled', 'cancelling', 'missing'
--          or 'ended:<status>' for a job that has already ended; mode 'filter': {matched, cut short
--          (1 or 0), Redis's time (µs)}; then '|' and the events (5 entries each, see
--          finish.lua).
local P, ttl = ARGV[1], ARGV[2]
local now = now_us()
local ev = {}

-- Cancels one job; returns the outcome (see above).
local function cancel_one(id)
  local key = P .. ':job:' .. id
  local status = redis.call('HGET', key, 'status')
  if not status then
    return 'missing'
  end
  if status == 'running' then
    if redis.call('HSETNX', key, 'cancel', 1) == 1 then
      redis.call('HSET', key, 'ttl', ttl, 'updated_at', now)
      redis.call('SADD', P .. ':cancelling', id)
    end
    return 'cancelling'
  end
  if status == 'pending' or status == 'waiting' then
    redis.call('HSET', key, 'ttl', ttl)
    finish().cancel_waiting_job(P, key, id, now, 'cancelled through the API', ev)
    return 'cancelled'
  end
  return 'ended:' .. status
end

local out = {}
if ARGV[3] == 'ids' then
  for i = 4, #ARGV do
    extend(out, {ARGV[i], cancel_one(ARGV[i])})
  end
else
  local queue, want_type, want_group = ARGV[4], ARGV[5], ARGV[6]
  local want = {}
  for s in string.gmatch(ARGV[7], '[^,]+') do
    want[s] = true
  end
  local dry, most = ARGV[8] == '1', tonumber(ARGV[9])
  local pass = job_filter(ARGV[7], queue, want_type, want_group, ARGV[10], ARGV[11], ARGV[12],
    ARGV[13])
  local queues = {queue}
  if queue == '' then
    queues = redis.call('SMEMBERS', P .. ':queues')
  end
  -- The candidates, gathered before any is cancelled (cancelling changes the lists walked).
  local ids = {}
  for _, q in ipairs(queues) do
    if want.pending then
      local groups = {''}
      if want_group ~= '' then
        groups = {want_group}
      elseif redis.call('HEXISTS', qk(P, q, 'meta'), 'grouped') == 1 then
        groups = redis.call('LRANGE', qk(P, q, 'groups'), 0, -1)
      end
      for _, g in ipairs(groups) do
        for _, lv in ipairs(LEVELS) do
          extend(ids, redis.call('LRANGE', ready_key(P, q, g, lv), 0, -1))
        end
      end
    end
    if want.scheduled then
      extend(ids, redis.call('ZRANGE', qk(P, q, 'scheduled'), 0, -1))
    end
    if want.waiting then
      extend(ids, redis.call('SMEMBERS', qk(P, q, 'waiting')))
    end
  end
  if want.pending then
    local types = {want_type}
    if want_type == '' then
      types = redis.call('SMEMBERS', P .. ':parked-types')
    end
    for _, t in ipairs(types) do
      extend(ids, redis.call('LRANGE', tk(P, t, 'parked'), 0, -1))
    end
  end
  if want.running then
    for _, proc in ipairs(redis.call('SMEMBERS', P .. ':workers')) do
      extend(ids, redis.call('LRANGE', P .. ':running:' .. proc, 0, -1))
    end
  end
  local matched, cut, done = 0, 0, {}
  for _, id in ipairs(ids) do
    if not done[id] then
      done[id] = true
      if pass(P .. ':job:' .. id) then
        if matched >= most then
          cut = 1
          break
        end
        matched = matched + 1
        if not dry then
          cancel_one(id)
        end
      end
    end
  end
  out = {matched, cut, now}
end
out[#out + 1] = '|'
return extend(out, ev)
