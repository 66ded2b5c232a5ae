-- Send dead-letter jobs back to pending with their attempts reset; the error history stays.
-- KEYS: dlq, pending
-- ARGV: key prefix, mode ('id' or 'type' or 'all'), the id or the type ('' for all)
-- Returns: the ids sent back
local now = now_us()
local ids
if ARGV[2] == 'id' then
  ids = {ARGV[3]}
else
  ids = redis.call('ZRANGE', KEYS[1], 0, -1)
end
local out = {}
for _, id in ipairs(ids) do
  local key = ARGV[1] .. ':job:' .. id
  if ARGV[2] ~= 'type' or redis.call('HGET', key, 'type') == ARGV[3] then
    if redis.call('ZREM', KEYS[1], id) == 1 then
      redis.call('HSET', key, 'status', 'pending', 'attempt', 0, 'updated_at', now)
      redis.call('HDEL', key, 'completed_at', 'started_at', 'run_at')
      redis.call('RPUSH', KEYS[2], id)
      out[#out + 1] = id
    end
  end
end
return out
