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
--       job 12 values: id, type, payload, max_attempts, delay_ms, run_at_us ('' = none),
--       timeout_secs ('' = none), '1' when the job has an idempotency key else '0', queue,
--       priority (high, normal, low), group ('' = none), and '' or, for a job that uses them,
--       a JSON object of the rarer settings (strings): unique (key), expires (start deadline
--       µs), parents (ids, comma-separated), ref (in its workflow), opf ('run': on parent
--       failure), schedule (name). One argument for all of them: Redis makes a Lua string of
--       every argument, and a batch of 1000 plain jobs should not pay for six empty ones each.
-- Returns: {1, id, created, id, created, ...} where created is 1 for a new job and 0 when an
--          idempotency key named an earlier job (whose id is returned); {0, queue} when that
--          queue is too full for the new jobs; {-1, id} when a new job's id already exists;
--          {-2, id, key} when a unique key is held by job id (pending, scheduled, waiting or
--          running), or {-2, '', key} when two jobs of the call share it; {-3, id, parent} when a parent does not exist; {-4, id, parent, status}
--          when a parent has failed, been cancelled or expired (and the job did not ask to run
--          anyway).
local P = ARGV[1]
local W = 12
local H = 6
local now = now_us()
local n = (#ARGV - H) / W
local out = {1}
local seen, uniq = {}, {}
local fresh = {}
-- The rarer settings of the jobs that have any, by index (see insert_job).
local xs = {}
-- The ids of this call's jobs, built when a job first names parents (they may be among them).
local batch = nil
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
    if redis.call('EXISTS', KEYS[2 + i * 2]) == 1 then
      return {-1, id}
    end
    local x = ARGV[a + 11]
    if x ~= '' then
      x = cjson.decode(x)
      xs[i] = x
      local u = x.unique
      if u then
        if uniq[u] then
          -- Two jobs of this call share the key: none is created, and no job holds it.
          return {-2, '', u}
        end
        local holder = redis.call('GET', P .. ':uniq:' .. u)
        if holder and ACTIVE[redis.call('HGET', P .. ':job:' .. holder, 'status')] then
          return {-2, holder, u}
        end
        uniq[u] = id
      end
      if x.parents then
        if not batch then
          batch = {}
          for k = 0, n - 1 do
            batch[ARGV[H + 1 + k * W]] = true
          end
        end
        x.link, x.deps = {}, 0
        for parent in string.gmatch(x.parents, '[^,]+') do
          local status = batch[parent] and 'pending' or redis.call('HGET', P .. ':job:' .. parent,
            'status')
          if not status then
            return {-3, id, parent}
          elseif ACTIVE[status] then
            x.link[#x.link + 1] = parent
            x.deps = x.deps + 1
          elseif status ~= 'completed' and x.opf ~= 'run' then
            return {-4, id, parent, status}
          end
        end
      end
      if ARGV[5] ~= '' then
        x.wf = ARGV[5]
      end
      -- A job that a script may end as cancelled or expired keeps its record's TTL with it.
      if x.expires or x.parents or x.wf then
        x.ttl = ARGV[4]
      end
    end
    local q = ARGV[a + 8]
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
for i = 0, n - 1 do
  if out[3 + i * 2] == 1 then
    local a = H + 1 + i * W
    local due = now + tonumber(ARGV[a + 4]) * 1000
    if ARGV[a + 5] ~= '' then
      due = tonumber(ARGV[a + 5])
    end
    insert_job(P, st, now, ARGV[a], KEYS[2 + i * 2], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], due,
      ARGV[a + 6], ARGV[a + 8], ARGV[a + 9], ARGV[a + 10], xs[i])
    if ARGV[a + 7] == '1' then
      redis.call('SET', KEYS[3 + i * 2], ARGV[a], 'EX', tonumber(ARGV[3]))
    end
  end
end
if ARGV[5] ~= '' and st.created > 0 then
  redis.call('HSET', P .. ':wf:' .. ARGV[5], 'nodes', ARGV[6], 'left', st.created,
    'created_at', now, 'ttl', ARGV[4])
  -- GET /workflows lists the newest 10000.
  redis.call('ZADD', P .. ':wfs', now, ARGV[5])
  redis.call('ZREMRANGEBYRANK', P .. ':wfs', 0, -10001)
end
insert_done(P, st, KEYS[1], new_queues, now, ARGV[4])
return out
