-- The explorer's walk (GET /jobs; the selections of POST /jobs/retry and /jobs/delete): newest
-- first along one index, keeping the ids of the jobs that pass a filter, and stopping after a
-- number of index entries however few passed, so each call does bounded work.
-- Two indexes: the journal (every job by creation: P:jl, the hours that have a list, and
-- P:jl:<hour>, the ids created in that hour, oldest first; see insert_done) and, for failed
-- jobs, the DLQ (P:dlq, by the time each entered it).
-- ARGV: key prefix, index ('journal' or 'dlq'), where to go on ('' '' to start: for the journal
--       an hour and an index in its list, for the DLQ a score and the id last seen there), most
--       ids to keep, most index entries to look at, then the filter (see job_filter in
--       select.lua): statuses, queue, type, group, needle, path, value, upto (µs, '' = none;
--       for the DLQ, the latest time of entering it rather than of creation)
-- Returns: {where to go on (two values, '' '' at the end of the index), entries looked at,
--          Redis's time (µs), then the ids kept}
local P, index, at1, at2 = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local want, budget = tonumber(ARGV[5]), tonumber(ARGV[6])
local upto = ARGV[14]
local journal = index == 'journal'
-- In the DLQ every record is a failed job's, so its status is not read again, and the bound
-- applies to the time of entering it, read from the index itself.
local pass = job_filter(journal and ARGV[7] or '', ARGV[8], ARGV[9], ARGV[10], ARGV[11],
  ARGV[12], ARGV[13], journal and upto or '')
local now = now_us()
local kept, seen = {}, 0
local function done(a, b)
  local out = {a, b, seen, now}
  return extend(out, kept)
end
local CHUNK = 100

if journal then
  local hours = redis.call('ZRANGE', P .. ':jl', at1 ~= '' and at1 or '+inf', '-inf', 'BYSCORE',
    'REV')
  for _, h in ipairs(hours) do
    local jk = P .. ':jl:' .. h
    local i
    if h == at1 and at2 ~= '' then
      i = tonumber(at2)
    else
      i = redis.call('LLEN', jk) - 1
      if i < 0 then
        -- The hour's list has expired with its jobs.
        redis.call('ZREM', P .. ':jl', h)
      end
    end
    while i >= 0 do
      local lo = math.max(0, i - CHUNK + 1)
      local ids = redis.call('LRANGE', jk, lo, i)
      if #ids == 0 then
        -- The hour's list expired between two pages.
        break
      end
      for j = #ids, 1, -1 do
        if #kept >= want or seen >= budget then
          return done(h, lo + j - 1)
        end
        seen = seen + 1
        if pass(P .. ':job:' .. ids[j]) then
          kept[#kept + 1] = ids[j]
        end
      end
      i = lo - 1
    end
  end
  return done('', '')
end

-- The DLQ: newest first by score, ties (one step may bury several jobs) in Redis's order for
-- them (members in descending order), so the place to go on is a score and the id last looked
-- at with it: the entries with that score and an id not below it have been passed.
local dlq = P .. ':dlq'
local max, last = at1, at2
if max == '' then
  max = upto ~= '' and upto or '+inf'
end
local passed = 0
if last ~= '' then
  for _, m in ipairs(redis.call('ZRANGE', dlq, max, max, 'BYSCORE', 'REV')) do
    if m >= last then
      passed = passed + 1
    end
  end
end
while true do
  local chunk = redis.call('ZRANGE', dlq, max, '-inf', 'BYSCORE', 'REV', 'LIMIT', passed, CHUNK,
    'WITHSCORES')
  if #chunk == 0 then
    return done('', '')
  end
  for j = 1, #chunk, 2 do
    if #kept >= want or seen >= budget then
      return done(max, last)
    end
    local id, score = chunk[j], chunk[j + 1]
    seen = seen + 1
    if score == max then
      passed = passed + 1
    else
      max, passed = score, 1
    end
    last = id
    if pass(P .. ':job:' .. id) then
      kept[#kept + 1] = id
    end
  end
end
