-- Failed attempts and the dead-letter queue: prepended, after common.lua, to the scripts that
-- record a failure (see src/store/scripts.rs).

-- Records a failed attempt on the job record: the last error, and a history of the last 20
-- (their times in ms: cjson keeps only 14 significant digits).
local function push_error(key, message, now)
  local attempt = tonumber(redis.call('HGET', key, 'attempt') or '0')
  local old = redis.call('HGET', key, 'errors')
  local list = {}
  if old then
    list = cjson.decode(old)
  end
  list[#list + 1] = {attempt = attempt, error = message, at = math.floor(now / 1000)}
  while #list > 20 do
    table.remove(list, 1)
  end
  redis.call('HSET', key, 'error', message, 'errors', cjson.encode(list), 'updated_at', now)
end

-- Moves a job to the dead-letter queue (its record then never expires), and drops the oldest
-- entries past `cap`. Returns the ids dropped, so the caller can count and log them.
local function bury(dlq, counters, P, id, now, cap)
  local key = P .. ':job:' .. id
  redis.call('HSET', key, 'status', 'failed', 'completed_at', now)
  redis.call('HDEL', key, 'run_at')
  redis.call('PERSIST', key)
  redis.call('ZADD', dlq, now, id)
  redis.call('HINCRBY', counters, 'dead', 1)
  local mk = qk(P, (placement(key)), 'meta')
  redis.call('HINCRBY', mk, 'failed', 1)
  -- The queue's running total of jobs moved to the DLQ, for GET /stats/history.
  redis.call('HINCRBY', mk, 'dead', 1)
  local evicted = {}
  local over = redis.call('ZCARD', dlq) - cap
  if over > 0 then
    local old = redis.call('ZPOPMIN', dlq, over)
    for i = 1, #old, 2 do
      local okey = P .. ':job:' .. old[i]
      redis.call('HINCRBY', qk(P, (placement(okey)), 'meta'), 'failed', -1)
      redis.call('DEL', okey)
      evicted[#evicted + 1] = old[i]
    end
  end
  return evicted
end
