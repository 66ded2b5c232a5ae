-- Move scheduled jobs (delayed or waiting out a retry backoff) that are due into pending.
-- "Due" is judged by Redis's clock, so a host with a skewed clock cannot run a job early.
-- KEYS: scheduled, pending
-- ARGV: key prefix, most jobs to move
-- Returns: {jobs moved, due time of the next scheduled job in µs or -1, Redis time in µs}
local now = now_us()
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('RPUSH', KEYS[2], id)
  redis.call('HDEL', ARGV[1] .. ':job:' .. id, 'run_at')
end
local nxt = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local next_due = -1
if nxt[2] then
  next_due = tonumber(nxt[2])
end
return {#ids, next_due, now}
