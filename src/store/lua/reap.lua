-- Recover the jobs of a worker process whose heartbeat has expired. The heartbeat is checked here,
-- inside the same atomic step, so a process that came back a moment ago keeps its jobs.
-- Each recovered job counts as a failed attempt, so a job that keeps killing its process ends in
-- the dead-letter queue instead of looping forever.
-- KEYS: workers set, pending, dlq, counters, heartbeat key of the process, its running list
-- ARGV: key prefix, process id, error message, DLQ cap
-- Returns: {requeued ids..., '|', dead ids..., '|', evicted ids...}, or false when alive
if redis.call('EXISTS', KEYS[5]) == 1 then
  return false
end
local now = now_us()
local ids = redis.call('LRANGE', KEYS[6], 0, -1)
local requeued, dead, evicted = {}, {}, {}
for _, id in ipairs(ids) do
  local key = ARGV[1] .. ':job:' .. id
  local attempt = tonumber(redis.call('HGET', key, 'attempt') or '1')
  local max = tonumber(redis.call('HGET', key, 'max_attempts') or '1')
  push_error(key, ARGV[3], now)
  if attempt < max then
    redis.call('HSET', key, 'status', 'pending')
    redis.call('RPUSH', KEYS[2], id)
    requeued[#requeued + 1] = id
  else
    dead[#dead + 1] = id
    for _, e in ipairs(bury(KEYS[3], KEYS[4], ARGV[1], id, now, tonumber(ARGV[4]))) do
      evicted[#evicted + 1] = e
    end
  end
end
redis.call('DEL', KEYS[6])
redis.call('SREM', KEYS[1], ARGV[2])
if #ids > 0 then
  redis.call('HINCRBY', KEYS[4], 'running', -#ids)
end
local out = requeued
out[#out + 1] = '|'
for _, id in ipairs(dead) do
  out[#out + 1] = id
end
out[#out + 1] = '|'
for _, id in ipairs(evicted) do
  out[#out + 1] = id
end
return out
