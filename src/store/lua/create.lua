-- Create one or more jobs, all or none: the checks (idempotency, uniqueness, parents, capacity),
-- the records, the queue entries, the keys and the counter moves together, so a crash never
-- leaves a record without its queue entry or the reverse, and two concurrent submissions with
-- one idempotency or unique key create one job. A workflow is one call: its nodes, their
-- dependencies and its own record are written together.
-- KEYS: counters, then per job: its record key, its idempotency key (for a job without one,
--       the bare prefix ':idem:', a name no key is ever given, so that every declared key lies
--       in the prefix's Redis Cluster slot)
-- ARGV: key prefix, max jobs per queue (pending plus scheduled), idempotency TTL seconds, job
--       TTL seconds, workflow id ('' = none), the workflow's nodes as JSON {ref: id}, then per
--       job 17 values: id, type, payload, max_attempts, delay_ms, run_at_us ('' = none),
--       timeout_secs ('' = none), '1' when the job has an idempotency key else '0', queue,
--       priority (high, normal, low), group ('' = none), unique key ('' = none), start
--       deadline µs ('' = none), parent ids (comma-separated, '' = none), ref in its workflow
--       ('' = none), on parent failure ('run' or ''), schedule name ('' = none)
-- Returns: {1, id, created, id, created, ...} where created is 1 for a new job and 0 when an
--          idempotency key named an earlier job (whose id is returned); {0, queue} when that
--          queue is too full for the new jobs; {-1, id} when a new job's id already exists;
--          {-2, id, key} when a unique key is held by job id (pending, scheduled, waiting or
--          running); {-3, id, parent} when a parent does not exist; {-4, id, parent, status}
--          when a parent has failed, been cancelled or expired (and the job did not ask to run
--          anyway).
local P = ARGV[1]
local W = 17
local H = 6
local now = now_us()
local n = (#ARGV - H) / W
local out = {1}
local seen, batch, uniq = {}, {}, {}
local fresh = {}
local jobs = {}
for i = 0, n - 1 do
  batch[ARGV[H + 1 + i * W]] = true
end
local ACTIVE = {pending = true, running = true, waiting = true}
for i = 0, n - 1 do
  local a = H + 1 + i * W
  local id = ARGV[a]
  local idem = KEYS[3 + i * 2]
  if ARGV[a + 7] ~= '1' then
    idem = false
  end
  local earlier = false
  if idem then
    earlier = seen[idem] or redis.call('GET', idem)
  end
  if earlier then
    out[#out + 1] = earlier
    out[#out + 1] = 0
  else
    local key = KEYS[2 + i * 2]
    if redis.call('EXISTS', key) == 1 then
      return {-1, id}
    end
    local q = ARGV[a + 8]
    local due = now + tonumber(ARGV[a + 4]) * 1000
    if ARGV[a + 5] ~= '' then
      due = tonumber(ARGV[a + 5])
    end
    local j = {id = id, key = key, type = ARGV[a + 1], payload = ARGV[a + 2],
      max_attempts = ARGV[a + 3], due = due, timeout = ARGV[a + 6], queue = q,
      priority = ARGV[a + 9], group = ARGV[a + 10]}
    local u = ARGV[a + 11]
    if u ~= '' then
      local holder = uniq[u] or redis.call('GET', P .. ':uniq:' .. u)
      if holder and (uniq[u] or ACTIVE[redis.call('HGET', P .. ':job:' .. holder, 'status')]) then
        return {-2, holder, u}
      end
      uniq[u] = id
      j.unique = u
    end
    if ARGV[a + 12] ~= '' then
      j.expires = ARGV[a + 12]
    end
    if ARGV[a + 13] ~= '' then
      j.parents, j.link, j.deps = ARGV[a + 13], {}, 0
      for parent in string.gmatch(ARGV[a + 13], '[^,]+') do
        local status = batch[parent] and 'pending' or redis.call('HGET', P .. ':job:' .. parent,
          'status')
        if not status then
          return {-3, id, parent}
        elseif ACTIVE[status] then
          j.link[#j.link + 1] = parent
          j.deps = j.deps + 1
        elseif status ~= 'completed' and ARGV[a + 15] ~= 'run' then
          return {-4, id, parent, status}
        end
      end
    end
    if ARGV[5] ~= '' then
      j.wf, j.ref = ARGV[5], ARGV[a + 14]
    end
    if ARGV[a + 15] == 'run' then
      j.opf = 'run'
    end
    if ARGV[a + 16] ~= '' then
      j.schedule = ARGV[a + 16]
    end
    -- A job that a script may end as cancelled or expired keeps its record's TTL with it.
    if j.expires or j.parents or j.wf then
      j.ttl = ARGV[4]
    end
    jobs[#jobs + 1] = j
    fresh[q] = (fresh[q] or 0) + 1
    if idem then
      seen[idem] = id
    end
    out[#out + 1] = id
    out[#out + 1] = 1
  end
end
local new_queues, full = room(P, fresh, tonumber(ARGV[2]))
if full then
  return {0, full}
end
local st = insert_state()
for i, j in ipairs(jobs) do
  insert_job(P, j, now, st)
end
for i = 0, n - 1 do
  if out[3 + i * 2] == 1 and ARGV[H + 8 + i * W] == '1' then
    redis.call('SET', KEYS[3 + i * 2], ARGV[H + 1 + i * W], 'EX', tonumber(ARGV[3]))
  end
end
if ARGV[5] ~= '' and st.created > 0 then
  redis.call('HSET', P .. ':wf:' .. ARGV[5], 'nodes', ARGV[6], 'left', st.created,
    'created_at', now, 'ttl', ARGV[4])
end
insert_done(P, st, KEYS[1], new_queues)
return out
