-- Creates or changes one schedule (PUT /schedules/{name}, or the SCHEDULES_FILE sync). A
-- schedule of the other source is left alone. The fire time is kept when the pattern and time
-- zone are unchanged, so a change of the job alone neither loses nor doubles a tick; the
-- revision moves on any change, so a tick computed from the old document does nothing.
-- KEYS: the schedule's hash, the set of schedule names, the due set
-- ARGV: name, document (canonical JSON), timing (pattern and zone), source ('api' or 'file'),
--       first fire time µs (used when the rhythm starts or restarts)
-- Returns: {'created'}, {'updated'}, {'unchanged'}, or {'conflict', its source}
local h, names, due = KEYS[1], KEYS[2], KEYS[3]
local name, spec, timing, source, first = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local now = now_us()
local cur = redis.call('HMGET', h, 'source', 'spec', 'timing', 'paused')
if cur[1] and cur[1] ~= source then
  return {'conflict', cur[1]}
end
if cur[2] == spec then
  return {'unchanged'}
end
redis.call('HSET', h, 'spec', spec, 'timing', timing, 'source', source, 'updated_at', now)
redis.call('HINCRBY', h, 'rev', 1)
local created = not cur[1]
if created then
  redis.call('HSET', h, 'created_at', now)
  redis.call('SADD', names, name)
end
if not cur[4] and (cur[3] ~= timing or not redis.call('ZSCORE', due, name)) then
  redis.call('ZADD', due, first, name)
end
return {created and 'created' or 'updated'}
