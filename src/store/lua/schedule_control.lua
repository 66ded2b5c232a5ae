-- Pauses, resumes or deletes one schedule. A paused schedule leaves the due set (no tick is
-- due while paused); resuming puts it back at its next fire time after now, so the ticks of
-- the pause are not made up. A delete is refused for a schedule of another source.
-- KEYS: the schedule's hash, the set of schedule names, the due set
-- ARGV: name, 'pause' | 'resume' | 'delete', source allowed to delete ('api' or 'file'),
--       next fire time µs (for resume)
-- Returns: {'ok'}, {'missing'}, or {'conflict', its source}
local h, names, due = KEYS[1], KEYS[2], KEYS[3]
local name, op, source, first = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local src = redis.call('HGET', h, 'source')
if not src then
  return {'missing'}
end
if op == 'delete' then
  if src ~= source then
    return {'conflict', src}
  end
  redis.call('DEL', h)
  redis.call('SREM', names, name)
  redis.call('ZREM', due, name)
elseif op == 'pause' then
  redis.call('HSET', h, 'paused', 1, 'updated_at', now_us())
  redis.call('ZREM', due, name)
elseif op == 'resume' then
  if redis.call('HDEL', h, 'paused') == 1 then
    redis.call('HSET', h, 'updated_at', now_us())
  end
  if not redis.call('ZSCORE', due, name) then
    redis.call('ZADD', due, first, name)
  end
end
return {'ok'}
