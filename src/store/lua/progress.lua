-- A running job's handler reports its progress: the record's `progress` field, written only
-- while the record exists, says `running` and carries the claim number the worker presents, so
-- a late report can neither bring back an expired or deleted record nor touch a job that has
-- moved on (finished, taken back, claimed again). Nothing else changes (not `updated_at`).
-- KEYS: job key
-- ARGV: claim number, percent (an integer 0-100), message
-- Returns: 1 when written, 0 when the job is not running under this claim.
local rec = redis.call('HMGET', KEYS[1], 'status', 'claim')
if rec[1] ~= 'running' or rec[2] ~= ARGV[1] then
  return 0
end
local pct = math.max(0, math.min(100, math.floor(tonumber(ARGV[2]) or 0)))
-- `at` in ms, written as an integer: Lua's cjson would keep only 14 significant digits.
local ms = math.floor(now_us() / 1000)
redis.call('HSET', KEYS[1], 'progress', string.format('{"percent":%d,"message":%s,"at":%.0f}',
  pct, cjson.encode(ARGV[3]), ms))
return 1
