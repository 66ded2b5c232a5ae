-- Shared by every script: prepended to each one when it is loaded (see src/store/scripts.rs).

-- Redis's clock in ms: one clock for every process, so a skewed host cannot run jobs early.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Records a failed attempt on the job record: the last error, and a history of the last 20.
local function push_error(key, message, now)
  local attempt = tonumber(redis.call('HGET', key, 'attempt') or '0')
  local old = redis.call('HGET', key, 'errors')
  local list = {}
  if old then
    list = cjson.decode(old)
  end
  list[#list + 1] = {attempt = attempt, error = message, at = now}
  while #list > 20 do
    table.remove(list, 1)
  end
  redis.call('HSET', key, 'error', message, 'errors', cjson.encode(list), 'updated_at', now)
end

-- Moves a job to the dead-letter queue (its record then never expires), and drops the oldest
-- entries past `cap`. Returns the ids dropped, so the caller can count and log them.
local function bury(dlq, counters, prefix, id, now, cap)
  local key = prefix .. ':job:' .. id
  redis.call('HSET', key, 'status', 'failed', 'completed_at', now)
  redis.call('HDEL', key, 'run_at')
  redis.call('PERSIST', key)
  redis.call('ZADD', dlq, now, id)
  redis.call('HINCRBY', counters, 'dead', 1)
  local evicted = {}
  local over = redis.call('ZCARD', dlq) - cap
  if over > 0 then
    local old = redis.call('ZPOPMIN', dlq, over)
    for i = 1, #old, 2 do
      redis.call('DEL', prefix .. ':job:' .. old[i])
      evicted[#evicted + 1] = old[i]
    end
  end
  return evicted
end

