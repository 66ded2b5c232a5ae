-- The dead-letter queue grouped by cause (one reply): every group, or one group's count up to a
-- time (the dry run of a group action). Indexes up to 1000 entries buried before the groups
-- existed first (index_legacy), so this read may write the index.
-- KEYS: dlq
-- ARGV: key prefix, fingerprint ('' for every group), the latest DLQ time to count (µs or '+inf')
-- Returns: {DLQ size, fingerprint, description (JSON), count, first µs, last µs, ...}; a group
--          with no entry up to that time is left out
local P, upto = ARGV[1], ARGV[3]
index_legacy(KEYS[1], P, 1000)
local info
if ARGV[2] == '' then
  info = redis.call('HGETALL', P .. ':dlq:groups')
else
  info = {ARGV[2], redis.call('HGET', P .. ':dlq:groups', ARGV[2])}
end
local out = {redis.call('ZCARD', KEYS[1])}
for i = 1, #info, 2 do
  if info[i + 1] then
    local g = group_key(P, info[i])
    local n = redis.call('ZCOUNT', g, '-inf', upto)
    if n > 0 then
      local first = redis.call('ZRANGE', g, 0, 0, 'WITHSCORES')
      local last = redis.call('ZRANGE', g, upto, '-inf', 'BYSCORE', 'REV', 'LIMIT', 0, 1, 'WITHSCORES')
      extend(out, {info[i], info[i + 1], n, first[2], last[2]})
    end
  end
end
return out
