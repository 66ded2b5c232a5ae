-- Shared by every script: prepended to each one when it is loaded (see src/store/scripts.rs).

-- Redis's clock in microseconds since the epoch: one clock for every process, so a skewed host
-- cannot run jobs early. (2^53 microseconds is year 2255; Lua's doubles hold it exactly.)
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

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

-- Claims up to n pending jobs for one worker process: each id moves into the process's own
-- running list, its record is marked running, the attempt counted and the claim numbered.
-- Returns a flat list, 7 entries per job (id, type, payload, attempt, max_attempts, timeout_secs
-- ('' = default), claim number), and how many were claimed; the caller moves the running
-- counter (once, with any other change). The claim number (field 'claim', one more at every
-- claim of the job) is the token an acknowledgement must present: a late outcome of an earlier
-- claim of the same job, even by the same process, then changes nothing.
-- A process whose heartbeat key is missing (never written, expired, or reaped) claims nothing
-- and gets nil: were it to die then, no reaper would look at its running list.
local function claim(pending, running, heartbeat, prefix, n, now)
  if n > 0 and redis.call('EXISTS', heartbeat) == 0 then
    return nil, 0
  end
  local out = {}
  local claimed = 0
  for _ = 1, n do
    local id = redis.call('LMOVE', pending, running, 'LEFT', 'RIGHT')
    if not id then
      break
    end
    local key = prefix .. ':job:' .. id
    local rec = redis.call('HMGET', key, 'type', 'payload', 'max_attempts', 'timeout_secs',
      'attempt', 'run_at', 'claim')
    if not rec[1] then
      -- An id without a record cannot run; drop it rather than hand a worker nothing.
      redis.call('LREM', running, -1, id)
    else
      local attempt = tonumber(rec[5] or '0') + 1
      local token = tonumber(rec[7] or '0') + 1
      redis.call('HSET', key, 'status', 'running', 'attempt', attempt, 'started_at', now,
        'updated_at', now, 'claim', token)
      if rec[6] then
        redis.call('HDEL', key, 'run_at')
      end
      claimed = claimed + 1
      out[#out + 1] = id
      out[#out + 1] = rec[1]
      out[#out + 1] = rec[2] or 'null'
      out[#out + 1] = attempt
      out[#out + 1] = rec[3] or '1'
      out[#out + 1] = rec[4] or ''
      out[#out + 1] = token
    end
  end
  return out, claimed
end

-- Whether this process still holds this claim of the job: the record carries the same claim
-- number, and the id is in the process's running list (it is taken out here). A job taken
-- back (by the reaper, a drain or the stranded-claim check) and claimed again has a newer
-- number; one taken back and not claimed again is no longer in the list.
local function release(running, key, id, token)
  if redis.call('HGET', key, 'claim') ~= token then
    return false
  end
  return redis.call('LREM', running, -1, id) > 0
end

-- After an acknowledgement, claims up to n next jobs for the same worker. The acknowledged job
-- leaves the running count and the claimed ones join it, so the counter moves once, by the
-- difference. Returns the claimed jobs as claim() does.
local function claim_after_ack(pending, running, heartbeat, counters, prefix, n, now)
  local jobs, claimed = claim(pending, running, heartbeat, prefix, n, now)
  if claimed ~= 1 then
    redis.call('HINCRBY', counters, 'running', claimed - 1)
  end
  return jobs or {}
end

-- Takes the selected jobs out of the dead-letter queue and returns their ids: one id
-- (mode 'id'), every job of one type (mode 'type') or all of them (mode 'all').
local function take_from_dlq(dlq, prefix, mode, value)
  local ids
  if mode == 'id' then
    ids = {value}
  else
    ids = redis.call('ZRANGE', dlq, 0, -1)
  end
  local taken = {}
  for _, id in ipairs(ids) do
    if mode ~= 'type' or redis.call('HGET', prefix .. ':job:' .. id, 'type') == value then
      if redis.call('ZREM', dlq, id) == 1 then
        taken[#taken + 1] = id
      end
    end
  end
  return taken
end

-- Appends the items of list b to list a.
local function extend(a, b)
  for _, v in ipairs(b) do
    a[#a + 1] = v
  end
  return a
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

