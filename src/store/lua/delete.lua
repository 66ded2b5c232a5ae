-- Delete jobs that have ended (DELETE /jobs/{id}, POST /jobs/delete): the record of a completed,
-- cancelled or expired job; a failed one's record with its DLQ entry and its place in its
-- failure group, as dlq_delete does. A job that has not ended is left alone.
-- KEYS: dlq
-- ARGV: key prefix, then the ids
-- Returns: {id, outcome, ...}, outcome 'deleted', 'missing', or the status of a job that has
--          not ended
local P = ARGV[1]
local ENDED = {completed = true, cancelled = true, expired = true}
local out, d = {}, {}
for i = 2, #ARGV do
  local id = ARGV[i]
  local key = P .. ':job:' .. id
  local status = redis.call('HGET', key, 'status')
  local outcome = status or 'missing'
  if status == 'failed' then
    if redis.call('ZREM', KEYS[1], id) == 1 then
      group_remove(P, key, id)
      bump(d, qk(P, (placement(key)), 'meta'), 'failed', -1)
    end
    redis.call('DEL', key)
    outcome = 'deleted'
  elseif ENDED[status] then
    redis.call('DEL', key)
    outcome = 'deleted'
  end
  extend(out, {id, outcome})
end
flush(d)
return out
