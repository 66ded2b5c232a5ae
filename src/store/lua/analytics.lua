-- One analytics event into the aggregates of its UTC day, at most once per job id.
-- KEYS: done marker of the job, the day's stats hash of the event (count + sums), the day's
--       HyperLogLog of the event's users, the day's set of event names
-- ARGV: marker TTL seconds, aggregate TTL seconds, event name, user id ('' = none),
--       then property name, number pairs
-- Returns: 1 when counted, 0 when this job id was counted before (a retry): nothing changes.
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  return 0
end
redis.call('HINCRBY', KEYS[2], 'count', 1)
for i = 5, #ARGV, 2 do
  redis.call('HINCRBYFLOAT', KEYS[2], 'sum:' .. ARGV[i], ARGV[i + 1])
end
redis.call('EXPIRE', KEYS[2], ARGV[2])
if ARGV[4] ~= '' then
  redis.call('PFADD', KEYS[3], ARGV[4])
  redis.call('EXPIRE', KEYS[3], ARGV[2])
end
redis.call('SADD', KEYS[4], ARGV[3])
redis.call('EXPIRE', KEYS[4], ARGV[2])
return 1
