-- The counts of GET /stats, read in one step (one reply: a Redis that hangs costs one timeout):
-- the totals and each queue's counts.
-- KEYS: dlq, counters
-- ARGV: key prefix
-- Returns: {dlq, created, running, completed, dead, queue...}, 6 entries per queue: name,
--          pending, scheduled, running, failed, paused (1 or 0)
local P = ARGV[1]
local c = redis.call('HMGET', KEYS[2], 'created', 'running', 'completed', 'dead')
local out = {redis.call('ZCARD', KEYS[1]), tonumber(c[1] or '0'), tonumber(c[2] or '0'),
  tonumber(c[3] or '0'), tonumber(c[4] or '0')}
local queues = redis.call('SMEMBERS', P .. ':queues')
table.sort(queues)
for _, q in ipairs(queues) do
  local m = redis.call('HMGET', qk(P, q, 'meta'), 'pending', 'running', 'failed', 'paused')
  extend(out, {q, tonumber(m[1] or '0'), redis.call('ZCARD', qk(P, q, 'scheduled')),
    tonumber(m[2] or '0'), tonumber(m[3] or '0'), m[4] == '1' and 1 or 0})
end
return out
