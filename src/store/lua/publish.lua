-- One outbox event becomes its webhook delivery jobs: the event leaves the outbox and the jobs
-- are created (insert.lua, as create.lua writes a job) in one step. An event already gone
-- (another process published it) creates nothing, so each event makes its jobs exactly once
-- however many dispatchers race for it. An event with no job (no subscription matches it any
-- more) is simply removed.
-- KEYS: counters, the outbox, then each job's record key
-- ARGV: key prefix, max jobs per queue, job TTL seconds (for the journal), the event as it sits
--       in the outbox, the delivery jobs' type, then per job 5 values: id, payload,
--       max_attempts, queue, subscription
-- Returns: {'done'}, {'gone'} (not in the outbox), or {'full', queue} (that queue has no room
--          for its deliveries: nothing changed, the event stays)
local P, max = ARGV[1], tonumber(ARGV[2])
local H, W = 5, 5
local n = (#ARGV - H) / W
local fresh = {}
for i = 0, n - 1 do
  local q = ARGV[H + 4 + i * W]
  fresh[q] = (fresh[q] or 0) + 1
end
local new_queues, full = room(P, fresh, max)
if full then
  return {'full', full}
end
if redis.call('LREM', KEYS[2], 1, ARGV[4]) == 0 then
  return {'gone'}
end
local now = now_us()
local st = insert_state()
for i = 0, n - 1 do
  local a = H + 1 + i * W
  insert_job(P, st, now, ARGV[a], KEYS[3 + i], ARGV[5], ARGV[a + 1], ARGV[a + 2], now, '',
    ARGV[a + 3], 'normal', '', {sub = ARGV[a + 4]})
end
insert_done(P, st, KEYS[1], new_queues, now, ARGV[3])
return {'done'}
