-- GET /workers in one step: every registered process whose heartbeat still exists, with the
-- heartbeat's JSON, the key's PTTL (its age is the TTL it was written with, less this: Redis's
-- clock alone, so skewed hosts compare) and, per job the heartbeat lists, the record's
-- `started_at` and `progress`. Processes whose heartbeat is gone (dead, not yet reaped) are
-- left out. Bounded: processes × their worker threads (256 jobs per process at most).
-- KEYS: workers
-- ARGV: key prefix
-- Returns: {now µs, then per process: id, heartbeat JSON, pttl ms, n, n × (started_at, progress)}
local P = ARGV[1]
local out = {now_us()}
local procs = redis.call('SMEMBERS', KEYS[1])
table.sort(procs)
for _, proc in ipairs(procs) do
  local hb = P .. ':worker:' .. proc
  local info = redis.call('GET', hb)
  local ttl = redis.call('PTTL', hb)
  if info and ttl >= 0 then
    local ok, beat = pcall(cjson.decode, info)
    local jobs = {}
    if ok and type(beat) == 'table' and type(beat.jobs) == 'table' then
      jobs = beat.jobs
    end
    local n = math.min(#jobs, 256)
    extend(out, {proc, info, ttl, n})
    for i = 1, n do
      local id = type(jobs[i]) == 'table' and jobs[i].id
      if type(id) == 'string' then
        extend(out, redis.call('HMGET', P .. ':job:' .. id, 'started_at', 'progress'))
      else
        extend(out, {false, false})
      end
    end
  end
end
return out
