-- Send dead-letter jobs back to their queues with their attempts reset; the error history stays.
-- KEYS: dlq
-- ARGV: key prefix, mode ('id', 'ids', 'type', 'all' or 'group'), the id, the ids
--       (comma-separated), the type or the fingerprint ('' for all), for a group the latest
--       DLQ time to take (µs or '+inf')
-- Returns: the ids sent back
local P = ARGV[1]
local now = now_us()
if ARGV[2] == 'group' then
  -- The group is complete once the entries buried before the groups existed are indexed.
  index_legacy(KEYS[1], P, 1000)
end
local ids = take_from_dlq(KEYS[1], P, ARGV[2], ARGV[3], ARGV[4])
local d = {}
for _, id in ipairs(ids) do
  local key = P .. ':job:' .. id
  redis.call('HSET', key, 'attempt', 0)
  redis.call('HDEL', key, 'completed_at', 'started_at', 'run_at', 'snoozes', 'fp')
  -- A workflow node counts as unfinished again (its children were settled when it failed).
  local wf = redis.call('HGET', key, 'wf')
  if wf then
    redis.call('HINCRBY', P .. ':wf:' .. wf, 'left', 1)
    redis.call('PERSIST', P .. ':wf:' .. wf)
  end
  local q = make_ready(P, key, id, false, now)
  bump(d, qk(P, q, 'meta'), 'pending', 1)
  bump(d, qk(P, q, 'meta'), 'failed', -1)
end
flush(d)
if #ids > 0 then
  wake(P)
end
return ids
