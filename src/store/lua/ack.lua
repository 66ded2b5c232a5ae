-- A group commit: the outcomes of several of one process's jobs (see complete.lua and fail.lua),
-- each recorded exactly as its own script would, and each worker's next job claimed with its
-- outcome, in one atomic step. One call instead of one per job saves Redis its per-call work
-- (reading, parsing and answering a command, setting up the script), and each job a few
-- commands (see new_acks in fast.lua).
-- KEYS: running list of this process, completed list, dlq, counters, heartbeat key of this
--       process, then the job key of each outcome
-- ARGV: key prefix, number of outcomes, then each outcome: 'c' and complete.lua's ARGV 2-10,
--       or 'f' and fail.lua's ARGV 2-12; then the selection for the next claims
-- Returns: {n, then for each outcome in order: the length of its answer, then the answer of
--          complete.lua or fail.lua}
local P, n = ARGV[1], tonumber(ARGV[2])
local at, parts = 3, {}
for i = 1, n do
  local w = ARGV[at] == 'c' and 9 or 11
  parts[i] = {ARGV[at], {P, unpack(ARGV, at + 1, at + w)}}
  at = at + 1 + w
end
local sel = {unpack(ARGV, at)}
-- Each next claim draws its first queue with a seed of its own, as separate calls would.
local seed = tonumber(sel[2])
local c = new_acks(KEYS[5])
local out = {n}
for i = 1, n do
  local r
  sel[2] = seed
  seed = (seed * 48271) % 2147483647
  if parts[i][1] == 'c' then
    r = complete_job({KEYS[1], KEYS[2], KEYS[4], KEYS[5 + i], KEYS[5]}, parts[i][2], sel, c)
  else
    r = fail_job({KEYS[1], KEYS[3], KEYS[4], KEYS[5 + i], KEYS[5]}, parts[i][2], sel, c)
  end
  out[#out + 1] = #r
  extend(out, r)
end
flush_acks(c, KEYS[2])
return out
