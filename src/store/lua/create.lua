-- Create one or more jobs, all or none: the capacity check, the records, the queue entries and the
-- counter move together, so a crash never leaves a record without its queue entry or the reverse.
-- KEYS: pending, scheduled, counters, job key of each job (in ARGV order)
-- ARGV: max_queue, then per job 7 values:
--       id, type, payload, max_attempts, delay_ms, run_at_ms ('' = none), timeout_secs ('' = none)
-- Returns: number of jobs created, 0 when the queue is too full for all of them,
--          or -1 when an id already exists.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = (#ARGV - 1) / 7
local waiting = redis.call('LLEN', KEYS[1]) + redis.call('ZCARD', KEYS[2])
if waiting + n > tonumber(ARGV[1]) then
  return 0
end
for i = 0, n - 1 do
  if redis.call('EXISTS', KEYS[4 + i]) == 1 then
    return -1
  end
end
for i = 0, n - 1 do
  local a = 2 + i * 7
  local id, key = ARGV[a], KEYS[4 + i]
  local due = now + tonumber(ARGV[a + 4])
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
end
redis.call('HINCRBY', KEYS[3], 'created', n)
return n
