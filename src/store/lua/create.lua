-- Create one or more jobs, all or none: the capacity check, the records, the queue entries, the
-- idempotency keys and the counter move together, so a crash never leaves a record without its
-- queue entry or the reverse, and two concurrent submissions with one key create one job.
-- KEYS: pending, scheduled, counters, then per job: its record key, its idempotency key (for a
--       job without one, the bare prefix ':idem:', a name no key is ever given, so that every
--       declared key lies in the prefix's Redis Cluster slot)
-- ARGV: max_queue, idempotency TTL seconds, then per job 8 values: id, type, payload,
--       max_attempts, delay_ms, run_at_us ('' = none), timeout_secs ('' = none), and '1' when the
--       job has an idempotency key, else '0'
-- Returns: {1, id, created, id, created, ...} where created is 1 for a new job and 0 when an
--          idempotency key named an earlier job (whose id is returned); {0} when the queue is too
--          full for the new jobs; {-1, id} when a new job's id already exists.
local now = now_us()
local n = (#ARGV - 2) / 8
local out = {1}
local fresh = 0
local seen = {}
for i = 0, n - 1 do
  local idem = KEYS[5 + i * 2]
  if ARGV[10 + i * 8] ~= '1' then
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
    if redis.call('EXISTS', KEYS[4 + i * 2]) == 1 then
      return {-1, ARGV[3 + i * 8]}
    end
    fresh = fresh + 1
    if idem then
      seen[idem] = ARGV[3 + i * 8]
    end
    out[#out + 1] = ARGV[3 + i * 8]
    out[#out + 1] = 1
  end
end
if fresh > 0 and redis.call('LLEN', KEYS[1]) + redis.call('ZCARD', KEYS[2]) + fresh > tonumber(ARGV[1]) then
  return {0}
end
for i = 0, n - 1 do
  if out[3 + i * 2] == 1 then
    local a = 3 + i * 8
    local id, key, idem = ARGV[a], KEYS[4 + i * 2], ARGV[a + 7] == '1' and KEYS[5 + i * 2]
    local due = now + tonumber(ARGV[a + 4]) * 1000
    if ARGV[a + 5] ~= '' then
      due = tonumber(ARGV[a + 5])
    end
    redis.call('HSET', key, 'type', ARGV[a + 1], 'payload', ARGV[a + 2], 'status', 'pending',
      'attempt', 0, 'max_attempts', ARGV[a + 3], 'created_at', now, 'updated_at', now)
    if ARGV[a + 6] ~= '' then
      redis.call('HSET', key, 'timeout_secs', ARGV[a + 6])
    end
    if due > now then
      redis.call('HSET', key, 'run_at', due)
      redis.call('ZADD', KEYS[2], due, id)
    else
      redis.call('RPUSH', KEYS[1], id)
    end
    if idem then
      redis.call('SET', idem, id, 'EX', tonumber(ARGV[2]))
    end
  end
end
if fresh > 0 then
  redis.call('HINCRBY', KEYS[3], 'created', fresh)
end
return out
