-- Claim up to ARGV[2] pending jobs for one worker process: move each id into the process's own
-- running list, mark its record running and count the attempt, and hand back what the worker
-- needs to run it, all in one round trip.
-- KEYS: pending, running list of this process, counters
-- ARGV: key prefix, max jobs
-- Returns: flat array, 6 entries per job: id, type, payload, attempt, max_attempts, timeout_secs
local now = now_ms()
local out = {}
local claimed = 0
for _ = 1, tonumber(ARGV[2]) do
  local id = redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT')
  if not id then
    break
  end
  local key = ARGV[1] .. ':job:' .. id
  local rec = redis.call('HMGET', key, 'type', 'payload', 'max_attempts', 'timeout_secs')
  if not rec[1] then
    -- An id without a record cannot run; drop it rather than hand a worker nothing.
    redis.call('LREM', KEYS[2], -1, id)
  else
    local attempt = redis.call('HINCRBY', key, 'attempt', 1)
    redis.call('HSET', key, 'status', 'running', 'started_at', now, 'updated_at', now)
    redis.call('HDEL', key, 'run_at')
    claimed = claimed + 1
    out[#out + 1] = id
    out[#out + 1] = rec[1]
    out[#out + 1] = rec[2] or 'null'
    out[#out + 1] = attempt
    out[#out + 1] = rec[3] or '1'
    out[#out + 1] = rec[4] or ''
  end
end
if claimed > 0 then
  redis.call('HINCRBY', KEYS[3], 'running', claimed)
end
return out
