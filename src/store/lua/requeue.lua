-- Put every job this process still holds back at the front of pending, as it was before the
-- claim: used when a drain runs out of time. The interrupted attempt is not counted.
-- KEYS: running list of this process, pending, counters
-- ARGV: key prefix
-- Returns: the ids requeued
local now = now_us()
local ids = redis.call('LRANGE', KEYS[1], 0, -1)
for i = #ids, 1, -1 do
  local key = ARGV[1] .. ':job:' .. ids[i]
  redis.call('LPUSH', KEYS[2], ids[i])
  redis.call('HSET', key, 'status', 'pending', 'updated_at', now)
  redis.call('HDEL', key, 'started_at')
  if tonumber(redis.call('HGET', key, 'attempt') or '0') > 0 then
    redis.call('HINCRBY', key, 'attempt', -1)
  end
end
redis.call('DEL', KEYS[1])
if #ids > 0 then
  redis.call('HINCRBY', KEYS[3], 'running', -#ids)
end
return ids
