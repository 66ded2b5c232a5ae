-- Recover the jobs of a worker process whose heartbeat has expired. The heartbeat is checked here,
-- inside the same atomic step, so a process that came back a moment ago keeps its jobs.
-- Each recovered job counts as a failed attempt, so a job that keeps killing its process ends in
-- the dead-letter queue instead of looping forever.
-- KEYS: workers set, pending, dlq, counters, heartbeat key of the process, its running list
-- ARGV: key prefix, process id, error message
-- Returns: {requeued ids..., '|', dead ids...}, or false when the process is alive
if redis.call('EXISTS', KEYS[5]) == 1 then
  return false
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ids = redis.call('LRANGE', KEYS[6], 0, -1)
local requeued, dead = {}, {}
for _, id in ipairs(ids) do
  local key = ARGV[1] .. ':job:' .. id
  local attempt = tonumber(redis.call('HGET', key, 'attempt') or '1')
  local max = tonumber(redis.call('HGET', key, 'max_attempts') or '1')
  redis.call('HSET', key, 'error', ARGV[3], 'updated_at', now)
  if attempt < max then
    redis.call('HSET', key, 'status', 'pending')
    redis.call('RPUSH', KEYS[2], id)
    requeued[#requeued + 1] = id
  else
    redis.call('HSET', key, 'status', 'failed', 'completed_at', now)
    redis.call('PERSIST', key)
    redis.call('ZADD', KEYS[3], now, id)
    redis.call('HINCRBY', KEYS[4], 'dead', 1)
    dead[#dead + 1] = id
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
return out
