-- Create one or more jobs, all or none: the capacity check, the records, the queue entries, the
-- idempotency keys and the counter moves together, so a crash never leaves a record without its
-- queue entry or the reverse, and two concurrent submissions with one key create one job.
-- KEYS: counters, then per job: its record key, its idempotency key (for a job without one,
--       the bare prefix ':idem:', a name no key is ever given, so that every declared key lies
--       in the prefix's Redis Cluster slot)
-- ARGV: key prefix, max jobs per queue (pending plus scheduled), idempotency TTL seconds, then
--       per job 11 values: id, type, payload, max_attempts, delay_ms, run_at_us ('' = none),
--       timeout_secs ('' = none), '1' when the job has an idempotency key else '0', queue,
--       priority (high, normal, low), group ('' = none)
-- Returns: {1, id, created, id, created, ...} where created is 1 for a new job and 0 when an
--          idempotency key named an earlier job (whose id is returned); {0, queue} when that
--          queue is too full for the new jobs; {-1, id} when a new job's id already exists.
local P = ARGV[1]
local W = 11
local now = now_us()
local n = (#ARGV - 3) / W
local out = {1}
local fresh = {}
local seen = {}
for i = 0, n - 1 do
  local a = 4 + i * W
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
      return {-1, ARGV[a]}
    end
    local q = ARGV[a + 8]
    fresh[q] = (fresh[q] or 0) + 1
    if idem then
      seen[idem] = ARGV[a]
    end
    out[#out + 1] = ARGV[a]
    out[#out + 1] = 1
  end
end
local max = tonumber(ARGV[2])
local new_queues = {}
for q, k in pairs(fresh) do
  local pending = redis.call('HGET', qk(P, q, 'meta'), 'pending')
  -- The count exists from a queue's first job on: without it the queue may be new.
  if not pending then
    new_queues[#new_queues + 1] = q
  end
  if tonumber(pending or '0') + redis.call('ZCARD', qk(P, q, 'scheduled')) + k > max then
    return {0, q}
  end
end
local created, ready, woke, ready_keys = 0, {}, false, {}
for i = 0, n - 1 do
  if out[3 + i * 2] == 1 then
    local a = 4 + i * W
    local id, key = ARGV[a], KEYS[2 + i * 2]
    local q, lv, g = ARGV[a + 8], ARGV[a + 9], ARGV[a + 10]
    local due = now + tonumber(ARGV[a + 4]) * 1000
    if ARGV[a + 5] ~= '' then
      due = tonumber(ARGV[a + 5])
    end
    redis.call('HSET', key, 'type', ARGV[a + 1], 'payload', ARGV[a + 2], 'status', 'pending',
      'attempt', 0, 'max_attempts', ARGV[a + 3], 'created_at', now, 'updated_at', now)
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
    if ARGV[a + 6] ~= '' then
      redis.call('HSET', key, 'timeout_secs', ARGV[a + 6])
    end
    if due > now then
      redis.call('HSET', key, 'run_at', due)
      redis.call('ZADD', qk(P, q, 'scheduled'), due, id)
    else
      if g == '' and lv == 'normal' then
        -- The common job, without a function call: in a batch of 1000 that shows.
        local rk = ready_keys[q]
        if not rk then
          rk = qk(P, q, 'ready:normal')
          ready_keys[q] = rk
        end
        if redis.call('RPUSH', rk, id) == 1 then
          became_ready(P, q, g, lv)
          woke = true
        end
      else
        woke = push_ready(P, q, g, lv, id, false) or woke
      end
      ready[q] = (ready[q] or 0) + 1
    end
    if ARGV[a + 7] == '1' then
      redis.call('SET', KEYS[3 + i * 2], id, 'EX', tonumber(ARGV[3]))
    end
    created = created + 1
  end
end
if created > 0 then
  if #new_queues > 0 then
    redis.call('SADD', P .. ':queues', unpack(new_queues))
    if redis.call('SCARD', P .. ':types-active') > 0 then
      for _, q in ipairs(new_queues) do
        redis.call('HSET', qk(P, q, 'meta'), 'typed', 1)
      end
    end
  end
  for q, _ in pairs(fresh) do
    -- Written even when 0 (all delayed), so the queue is known from now on.
    redis.call('HINCRBY', qk(P, q, 'meta'), 'pending', ready[q] or 0)
  end
  redis.call('HINCRBY', KEYS[1], 'created', created)
  -- A job behind others in a list changes nothing for a waiting process.
  if woke then
    wake(P)
  end
end
return out
