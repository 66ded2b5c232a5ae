-- Claim up to ARGV[3] jobs for one worker process from the queues it serves and hand back what
-- the workers need to run them, records included, in one round trip (see claim() in
-- flow.lua). When nothing can start, the process registers as waiting: the next script that
-- makes a job ready puts a token in its wake list, where its fetcher blocks.
-- KEYS: running list of this process, counters, heartbeat key of this process
-- ARGV: key prefix, process id, max jobs, then the selection: mode, seed, queue, weight, ...
-- Returns: {1, now µs, next rate-limited start µs or 0, n, event... (5n entries: jobs that
--          ended on the way, see finish.lua), job...}, 12 entries per job (see claim()); {0}
--          when this process is not registered (no heartbeat).
local P = ARGV[1]
local now = now_us()
local d, ev = {}, {}
local out, claimed, hint = claim(P, KEYS[1], KEYS[3], {unpack(ARGV, 4)}, tonumber(ARGV[3]), now,
  d, ev)
if not out then
  return {0}
end
bump(d, KEYS[2], 'running', claimed)
flush(d)
if claimed == 0 then
  redis.call('SADD', P .. ':waiters', ARGV[2])
  redis.call('DEL', P .. ':wake:' .. ARGV[2])
end
return extend(extend({1, now, hint or 0, #ev / 5}, ev), out)
