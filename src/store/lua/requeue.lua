-- Put jobs this process holds but does not run back at the front of pending, as they were
-- before the claim; the interrupted or never-started attempt is not counted. Used when a drain
-- runs out of time (every job held), and for jobs a lost Redis reply left in the running list
-- (the ids given).
-- KEYS: running list of this process, pending, counters
-- ARGV: key prefix, 'all' (every job in the running list) or 'ids' followed by the ids
-- Returns: the ids requeued
local now = now_us()
local ids = {}
if ARGV[2] == 'ids' then
  for i = 3, #ARGV do
    if redis.call('LREM', KEYS[1], 1, ARGV[i]) == 1 then
      ids[#ids + 1] = ARGV[i]
    end
  end
else
  ids = redis.call('LRANGE', KEYS[1], 0, -1)
  redis.call('DEL', KEYS[1])
end
for i = #ids, 1, -1 do
  local key = ARGV[1] .. ':job:' .. ids[i]
  redis.call('LPUSH', KEYS[2], ids[i])
  redis.call('HSET', key, 'status', 'pending', 'updated_at', now)
  redis.call('HDEL', key, 'started_at')
  if tonumber(redis.call('HGET', key, 'attempt') or '0') > 0 then
    redis.call('HINCRBY', key, 'attempt', -1)
  end
end
if #ids > 0 then
  redis.call('HINCRBY', KEYS[3], 'running', -#ids)
end
return ids
