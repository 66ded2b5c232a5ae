-- Delete dead-letter jobs: their DLQ entries and their records.
-- KEYS: dlq
-- ARGV: key prefix, mode ('id' or 'type' or 'all'), the id or the type ('' for all)
-- Returns: the number deleted
local ids
if ARGV[2] == 'id' then
  ids = {ARGV[3]}
else
  ids = redis.call('ZRANGE', KEYS[1], 0, -1)
end
local n = 0
for _, id in ipairs(ids) do
  local key = ARGV[1] .. ':job:' .. id
  if ARGV[2] ~= 'type' or redis.call('HGET', key, 'type') == ARGV[3] then
    if redis.call('ZREM', KEYS[1], id) == 1 then
      redis.call('DEL', key)
      n = n + 1
    end
  end
end
return n
