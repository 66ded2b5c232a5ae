-- Claim up to ARGV[2] pending jobs for one worker process and hand back what the workers need to
-- run them, records included, in one round trip (see claim() in common.lua).
-- KEYS: pending, running list of this process, counters
-- ARGV: key prefix, max jobs
-- Returns: flat array, 6 entries per job: id, type, payload, attempt, max_attempts, timeout_secs
local out, claimed = claim(KEYS[1], KEYS[2], ARGV[1], tonumber(ARGV[2]), now_us())
if claimed > 0 then
  redis.call('HINCRBY', KEYS[3], 'running', claimed)
end
return out
