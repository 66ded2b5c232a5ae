-- Put jobs this process holds but does not run back at the front of their queues, as they were
-- before the claim; the interrupted or never-started attempt is not counted. Used when a drain
-- runs out of time (every job held), and for jobs a lost Redis reply left in the running list
-- (the ids given).
-- KEYS: running list of this process, counters
-- ARGV: key prefix, 'all' (every job in the running list) or 'ids' followed by the ids
-- A job whose cancellation was asked for ends cancelled instead (it has stopped running).
-- Returns: the ids requeued, then '|' and the events (5 entries each, see finish.lua)
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
local d, ev, back = {}, {}, {}
for i = #ids, 1, -1 do
  local key = P .. ':job:' .. ids[i]
  local q, t, g = placement(key)
  bump_running(d, P, q, t, g, -1)
  if redis.call('HEXISTS', key, 'cancel') == 1 then
    end_cancelled(P, key, ids[i], q, t, now, ev, 'cancelled while running')
  else
    bump(d, qk(P, q, 'meta'), 'pending', 1)
    make_ready(P, key, ids[i], true, now)
    redis.call('HDEL', key, 'started_at')
    if tonumber(redis.call('HGET', key, 'attempt') or '0') > 0 then
      redis.call('HINCRBY', key, 'attempt', -1)
    end
    back[#back + 1] = ids[i]
  end
  flush(d)
  d = {}
  type_after(P, t, ids[i], nil, now, d)
end
if #ids > 0 then
  redis.call('HINCRBY', KEYS[2], 'running', -#ids)
  wake(P)
end
local out = {}
for i = #back, 1, -1 do
  out[#out + 1] = back[i]
end
out[#out + 1] = '|'
return extend(out, ev)
