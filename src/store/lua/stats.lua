-- The counts of GET /stats, read in one step (one reply: a Redis that hangs costs one timeout):
-- the totals and each queue's counts.
-- KEYS: dlq, counters
-- ARGV: key prefix
-- Returns: {dlq, created, running, completed, dead, cancelled, expired, queue...}, 7 entries
--          per queue: name, pending, scheduled, running, failed, paused (1 or 0), waiting
local P = ARGV[1]
local c = redis.call('HMGET', KEYS[2], 'created', 'running', 'completed', 'dead', 'cancelled',
  'expired')
local out = {redis.call('ZCARD', KEYS[1])}
for i = 1, 6 do
  out[#out + 1] = tonumber(c[i] or '0')
end
local queues = redis.call('SMEMBERS', P .. ':queues')
table.sort(queues)
for _, q in ipairs(queues) do
  local m = redis.call('HMGET', qk(P, q, 'meta'), 'pending', 'running', 'failed', 'paused',
    'waiting')
  extend(out, {q, tonumber(m[1] or '0'), redis.call('ZCARD', qk(P, q, 'scheduled')),
    tonumber(m[2] or '0'), tonumber(m[3] or '0'), m[4] == '1' and 1 or 0,
    tonumber(m[5] or '0')})
end
return out
