-- One page of the dead-letter queue, newest first, with each job's record (one reply).
-- KEYS: dlq
-- ARGV: key prefix, offset, limit
-- Returns: {total, id, {field, value, ...}, id, {...}, ...}
local out = {redis.call('ZCARD', KEYS[1])}
local offset, limit = tonumber(ARGV[2]), tonumber(ARGV[3])
if limit > 0 then
  local ids = redis.call('ZRANGE', KEYS[1], offset, offset + limit - 1, 'REV')
  for _, id in ipairs(ids) do
    out[#out + 1] = id
    out[#out + 1] = redis.call('HGETALL', ARGV[1] .. ':job:' .. id)
  end
end
return out
