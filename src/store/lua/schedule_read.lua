-- Read only: one schedule or every one (GET /schedules), with its due time and the status of
-- the job its last run made (absent once that job's record has expired).
-- KEYS: the set of schedule names, the due set
-- ARGV: key prefix, name ('' = every schedule)
-- Returns: {Redis time µs, {name, {field, value, ...}, due µs or '', last job status or ''}, ...}
local names, due = KEYS[1], KEYS[2]
local P, one = ARGV[1], ARGV[2]
local list
if one ~= '' then
  list = {one}
else
  list = redis.call('SMEMBERS', names)
  table.sort(list)
end
local out = {now_us()}
for _, name in ipairs(list) do
  local fields = redis.call('HGETALL', P .. ':schedule:' .. name)
  if #fields > 0 then
    local score = redis.call('ZSCORE', due, name) or ''
    local status = ''
    local last = redis.call('HGET', P .. ':schedule:' .. name, 'last_job')
    if last then
      status = redis.call('HGET', P .. ':job:' .. last, 'status') or ''
    end
    out[#out + 1] = {name, fields, score, status}
  end
end
return out
