-- Writing new jobs: prepended, after common.lua, to the scripts that create jobs (create, and a
-- schedule's tick), so that every way in makes the same record and puts it in the same place.

-- What a script that creates jobs gathers while it inserts them, and writes once at its end.
local function insert_state()
  return {created = 0, ready = {}, fresh = {}, ready_keys = {}, woke = false, ids = {}}
end

-- Queues of `fresh` (queue -> new jobs) that do not exist yet, and the first queue whose
-- pending plus scheduled jobs would pass `max` with the new ones (or nil).
local function room(P, fresh, max)
  local new_queues, full = {}, nil
  for q, k in pairs(fresh) do
    local pending = redis.call('HGET', qk(P, q, 'meta'), 'pending')
    -- The count exists from a queue's first job on: without it the queue may be new.
    if not pending then
      new_queues[#new_queues + 1] = q
    end
    if not full and tonumber(pending or '0') + redis.call('ZCARD', qk(P, q, 'scheduled')) + k > max
    then
      full = q
    end
  end
  return new_queues, full
end

local EXTRA_FIELDS = {'unique', 'expires', 'ttl', 'parents', 'wf', 'ref', 'opf', 'schedule',
  'traceparent', 'tracestate', 'sub'}

-- Writes one new job's record and puts it where it waits: its queue's ready list, the
-- scheduled set (due later), or its queue's waiting set (x.deps parents not finished yet).
-- The job: id, record key, type, payload, max_attempts, due (µs), timeout_secs ('' =
-- default), queue q, priority lv, group g ('' = none), and x: nil for a plain job, else its
-- rarer settings, any of unique, expires (µs), ttl, parents (ids, comma-separated), wf, ref,
-- opf ('run'), schedule, traceparent, tracestate, sub (the subscription a webhook delivery job
-- is for), and link (the parents to tell when it ends: those not finished yet)
-- with deps (#link). Plain arguments, not a table: a table per job shows in a batch of 1000.
local function insert_job(P, st, now, id, key, kind, payload, attempts, due, timeout, q, lv, g,
                          x)
  -- No attempt (0 until the first claim) and no updated_at (created_at until the first
  -- change): readers take the absence for those values, 40 bytes less a pending job.
  redis.call('HSET', key, 'type', kind, 'payload', payload, 'status', 'pending',
    'max_attempts', attempts, 'created_at', now)
  -- Like priority normal, queue default is the absence of the field: 30 bytes less a job.
  if q ~= 'default' then
    redis.call('HSET', key, 'queue', q)
  end
  if lv ~= 'normal' then
    redis.call('HSET', key, 'priority', lv)
  end
  if g ~= '' then
    redis.call('HSET', key, 'group', g)
  end
  if timeout ~= '' then
    redis.call('HSET', key, 'timeout_secs', timeout)
  end
  local deps = 0
  if x then
    for _, f in ipairs(EXTRA_FIELDS) do
      if x[f] then
        redis.call('HSET', key, f, x[f])
      end
    end
    if x.unique then
      redis.call('SET', P .. ':uniq:' .. x.unique, id)
    end
    for _, parent in ipairs(x.link or {}) do
      local pk = P .. ':job:' .. parent
      local had = redis.call('HGET', pk, 'children')
      redis.call('HSET', pk, 'children', had and (had .. ',' .. id) or id)
    end
    deps = x.deps or 0
  end
  if deps > 0 then
    redis.call('HSET', key, 'status', 'waiting', 'deps', deps)
    if due > now then
      redis.call('HSET', key, 'run_at', due)
    end
    redis.call('SADD', qk(P, q, 'waiting'), id)
    redis.call('HINCRBY', qk(P, q, 'meta'), 'waiting', 1)
  elseif due > now then
    redis.call('HSET', key, 'run_at', due)
    redis.call('ZADD', qk(P, q, 'scheduled'), due, id)
  else
    if g == '' and lv == 'normal' then
      -- The common job, with the fewest calls: in a batch of 1000 that shows.
      local rk = st.ready_keys[q]
      if not rk then
        rk = qk(P, q, 'ready:normal')
        st.ready_keys[q] = rk
      end
      if redis.call('RPUSH', rk, id) == 1 then
        became_ready(P, q, g, lv)
        st.woke = true
      end
    else
      st.woke = push_ready(P, q, g, lv, id, false) or st.woke
    end
    st.ready[q] = (st.ready[q] or 0) + 1
  end
  st.fresh[q] = (st.fresh[q] or 0) + 1
  st.created = st.created + 1
  st.ids[st.created] = id
end

-- Writes what inserting gathered: new queues made known, each queue's pending count, the
-- created total, the new ids in the journal (the explorer's index of every job by creation: one
-- list per hour, P:jl:<hour>, kept `ttl` (JOB_TTL_SECS) plus an hour from its first entry, and
-- the set of those hours, P:jl), and a token for the waiting processes when a ready list went
-- from empty.
local function insert_done(P, st, counters, new_queues, now, ttl)
  if st.created == 0 then
    return
  end
  if #new_queues > 0 then
    redis.call('SADD', P .. ':queues', unpack(new_queues))
    if redis.call('SCARD', P .. ':types-active') > 0 then
      for _, q in ipairs(new_queues) do
        redis.call('HSET', qk(P, q, 'meta'), 'typed', 1)
      end
    end
  end
  for q, n in pairs(st.fresh) do
    -- Written even when 0 (all delayed), so the queue is known from now on.
    local mk = qk(P, q, 'meta')
    redis.call('HINCRBY', mk, 'pending', st.ready[q] or 0)
    redis.call('HINCRBY', mk, 'created', n)
  end
  redis.call('HINCRBY', counters, 'created', st.created)
  local hour = math.floor(now / 3600000000)
  local jk = P .. ':jl:' .. hour
  if redis.call('RPUSH', jk, unpack(st.ids)) == st.created then
    redis.call('EXPIRE', jk, tonumber(ttl) + 3600)
    redis.call('ZADD', P .. ':jl', hour, hour)
  end
  -- A job behind others in a list changes nothing for a waiting process.
  if st.woke then
    wake(P)
  end
end
