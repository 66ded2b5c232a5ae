-- Read only: the schedules whose tick is due by Redis's clock, for the scheduler of every
-- process, which computes their next fire times and calls fire.lua for each.
-- KEYS: the due set
-- ARGV: key prefix, most schedules to return
-- Returns: {Redis time µs, the earliest fire time still to come µs or -1,
--           name, fire time µs, revision, document, ...}
local due = KEYS[1]
local P, limit = ARGV[1], tonumber(ARGV[2])
local now = now_us()
local out = {now, -1}
local first = redis.call('ZRANGE', due, 0, limit, 'WITHSCORES')
for i = 1, #first, 2 do
  local at = tonumber(first[i + 1])
  if at > now then
    out[2] = at
    break
  end
  if (#out - 2) / 4 < limit then
    local r = redis.call('HMGET', P .. ':schedule:' .. first[i], 'rev', 'spec')
    out[#out + 1] = first[i]
    out[#out + 1] = at
    out[#out + 1] = r[1] or ''
    out[#out + 1] = r[2] or ''
  end
end
return out
