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
  if redis.call('SCARD', P .. ':types-active') > 0 then
    redis.call('HSET', key, 'typed', 1)
  end
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
  -- Without a rate, its schedule (the next free start) goes too; so do the groups' without a
  -- group rate, rather than staying in Redis for good.
  if not redis.call('HGET', key, 'rate_n') then
    redis.call('HDEL', key, 'tat', 'ptat')
  end
  if scope == 'queue' and not redis.call('HGET', key, 'grate_n') then
    local gk = qk(P, name, 'gstate')
    for _, f in ipairs(redis.call('HKEYS', gk)) do
      if string.sub(f, 1, 4) == 'tat:' then
        redis.call('HDEL', gk, f)
      end
    end
  end
  if scope == 'type' and not redis.call('HGET', key, 'b_consec')
    and not redis.call('HGET', key, 'b_ratio') then
    -- No breaker any more: nothing may stay held by one.
    redis.call('HDEL', key, 'b_state', 'b_until', 'b_fails', 'b_hist', 'b_probe')
  end
end
if scope == 'type' then
  -- P:types-active lists the types the claim step must look at (see types_active()).
  local m = redis.call('HMGET', key, 'paused', 'conc', 'rate_n', 'b_consec', 'b_ratio')
  if m[1] or m[2] or m[3] or m[4] or m[5] then
    redis.call('SADD', P .. ':types-active', name)
  else
    redis.call('SREM', P .. ':types-active', name)
  end
  -- Each queue's 'typed' flag says whether any type has a setting, so the short way of
  -- claiming (next_fast) needs no read of its own to know.
  local typed = redis.call('SCARD', P .. ':types-active') > 0
  for _, q in ipairs(redis.call('SMEMBERS', P .. ':queues')) do
    if typed then
      redis.call('HSET', qk(P, q, 'meta'), 'typed', 1)
    else
      redis.call('HDEL', qk(P, q, 'meta'), 'typed')
    end
  end
end
local moved = 0
if scope == 'type' and action ~= 'pause' then
  moved = unpark_type(P, name, 1000, now_us())
end
wake(P)
return moved
