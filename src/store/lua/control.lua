-- Pause, resume, or set the limits of one queue or one job type, durably: the claim step reads
-- these fields on every claim, so every process sees a change at its next claim.
-- ARGV: key prefix, scope ('queue' or 'type'), name, action ('pause', 'resume' or 'limits'),
--       for 'limits' then: the fields to remove, '|', then field, value, ... to set
-- Returns: the number of set-aside jobs of the type sent back to their queues
local P, scope, name, action = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local key
if scope == 'queue' then
  redis.call('SADD', P .. ':queues', name)
  key = qk(P, name, 'meta')
else
  redis.call('SADD', P .. ':types', name)
  key = tk(P, name)
end
if action == 'pause' then
  redis.call('HSET', key, 'paused', 1)
elseif action == 'resume' then
  redis.call('HDEL', key, 'paused')
else
  local i = 5
  while ARGV[i] ~= '|' do
    redis.call('HDEL', key, ARGV[i])
    i = i + 1
  end
  for j = i + 1, #ARGV, 2 do
    redis.call('HSET', key, ARGV[j], ARGV[j + 1])
  end
  if scope == 'type' and not redis.call('HGET', key, 'b_consec')
    and not redis.call('HGET', key, 'b_ratio') then
    -- No breaker any more: nothing may stay held by one.
    redis.call('HDEL', key, 'b_state', 'b_until', 'b_fails', 'b_hist', 'b_probe')
  end
end
local moved = 0
if scope == 'type' and action ~= 'pause' then
  moved = unpark_type(P, name, 1000, now_us())
end
wake(P)
return moved
