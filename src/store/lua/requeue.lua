-- Put jobs this process holds but does not run back at the front of their queues, as they were
-- before the claim; the interrupted or never-started attempt is not counted. Used when a drain
-- runs out of time (every job held), and for jobs a lost Redis reply left in the running list
-- (the ids given).
-- KEYS: running list of this process, counters
-- ARGV: key prefix, 'all' (every job in the running list) or 'ids' followed by the ids
-- Returns: the ids requeued
local P = ARGV[1]
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
local d = {}
for i = #ids, 1, -1 do
  local key = P .. ':job:' .. ids[i]
  local q, t, g = placement(key)
  bump_running(d, P, q, t, g, -1)
  bump(d, qk(P, q, 'meta'), 'pending', 1)
  make_ready(P, key, ids[i], true, now)
  redis.call('HDEL', key, 'started_at')
  if tonumber(redis.call('HGET', key, 'attempt') or '0') > 0 then
    redis.call('HINCRBY', key, 'attempt', -1)
  end
  flush(d)
  d = {}
  type_after(P, t, ids[i], nil, now, d)
end
if #ids > 0 then
  redis.call('HINCRBY', KEYS[2], 'running', -#ids)
  wake(P)
end
return ids
