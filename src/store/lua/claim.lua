-- Claim up to ARGV[2] pending jobs for one worker process and hand back what the workers need to
-- run them, records included, in one round trip (see claim() in common.lua).
-- KEYS: pending, running list of this process, counters, heartbeat key of this process
-- ARGV: key prefix, max jobs
-- Returns: {1, job...}, 7 entries per job: id, type, payload, attempt, max_attempts,
--          timeout_secs, claim number; {0} when this process is not registered (no heartbeat).
local out, claimed = claim(KEYS[1], KEYS[2], KEYS[4], ARGV[1], tonumber(ARGV[2]), now_us())
if not out then
  return {0}
end
if claimed > 0 then
  redis.call('HINCRBY', KEYS[3], 'running', claimed)
end
return extend({1}, out)
