-- A snapshot of the running totals at the start of the current minute, taken by whichever
-- process's maintenance tick gets there first (the key's existence is the check, in this same
-- step, so one snapshot per minute however many processes run). GET /stats/history turns
-- consecutive snapshots into per-minute counts; nothing on a job's way is slowed by it.
-- KEYS: counters
-- ARGV: key prefix, seconds to keep a snapshot, most queues to record
-- Returns: {minute (Unix minutes, Redis's clock), 1 when this call took the snapshot else 0}
-- The snapshot P:hist:<minute> (a hash): at (the minute), the totals created, completed,
-- failed (moved to the DLQ), retried, cancelled, expired, and q:<queue>:<total> for the first
-- `most` queues by name (created, completed, failed, retried); qlast when there were more.
local P = ARGV[1]
local t = redis.call('TIME')
local minute = math.floor(tonumber(t[1]) / 60)
local key = P .. ':hist:' .. minute
if redis.call('EXISTS', key) == 1 then
  return {minute, 0}
end
local c = redis.call('HMGET', KEYS[1], 'created', 'completed', 'dead', 'retried', 'cancelled',
  'expired')
local fields = {'at', minute, 'created', c[1] or 0, 'completed', c[2] or 0, 'failed', c[3] or 0,
  'retried', c[4] or 0, 'cancelled', c[5] or 0, 'expired', c[6] or 0}
local queues = redis.call('SMEMBERS', P .. ':queues')
table.sort(queues)
local most = tonumber(ARGV[3])
if #queues > most then
  -- The last queue recorded: a queue named after it is not in this snapshot (its counts are
  -- unknown), one named before it and absent had no job yet (its counts are 0).
  extend(fields, {'qlast', queues[most]})
end
for i = 1, math.min(#queues, most) do
  local q = queues[i]
  local m = redis.call('HMGET', qk(P, q, 'meta'), 'created', 'completed', 'dead', 'retried')
  extend(fields, {'q:' .. q .. ':created', m[1] or 0, 'q:' .. q .. ':completed', m[2] or 0,
    'q:' .. q .. ':failed', m[3] or 0, 'q:' .. q .. ':retried', m[4] or 0})
end
redis.call('HSET', key, unpack(fields))
redis.call('EXPIRE', key, tonumber(ARGV[2]))
return {minute, 1}
