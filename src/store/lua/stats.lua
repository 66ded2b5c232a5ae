-- The counts of GET /stats, read in one step (one reply: a Redis that hangs costs one timeout).
-- KEYS: pending, scheduled, dlq, counters
-- Returns: {pending, scheduled, dlq, created, running, completed, dead}
local c = redis.call('HMGET', KEYS[4], 'created', 'running', 'completed', 'dead')
return {redis.call('LLEN', KEYS[1]), redis.call('ZCARD', KEYS[2]), redis.call('ZCARD', KEYS[3]),
  tonumber(c[1] or '0'), tonumber(c[2] or '0'), tonumber(c[3] or '0'), tonumber(c[4] or '0')}
