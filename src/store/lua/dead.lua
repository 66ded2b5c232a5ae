-- Failed attempts and the dead-letter queue: prepended, after common.lua, to the scripts that
-- record a failure or change the DLQ (see src/store/scripts.rs).

-- Records a failed attempt on the job record: the last error, and a history of the last 20
-- (their times in ms: cjson keeps only 14 significant digits).
local function push_error(key, message, now)
  local attempt = tonumber(redis.call('HGET', key, 'attempt') or '0')
  local old = redis.call('HGET', key, 'errors')
  local list = {}
  if old then
    list = cjson.decode(old)
  end
  list[#list + 1] = {attempt = attempt, error = message, at = math.floor(now / 1000)}
  while #list > 20 do
    table.remove(list, 1)
  end
  redis.call('HSET', key, 'error', message, 'errors', cjson.encode(list), 'updated_at', now)
end

-- Failures grouped by cause. A dead job is filed under a fingerprint of its type and its last
-- error with what varies between occurrences of one cause (numbers, ids, quoted values…)
-- replaced by placeholders, so listing the groups reads one small entry per group and acting on
-- one reads that group only. docs/redis-keys.md states the rules with examples;
-- src/store/tests/groups.rs tests them.

-- A long word of letters and digits with both is an id ("k3f9x2m8q1"); one of only hex digits,
-- 16 or more, a hash ("5d41402abc4b2a76b9719d911017c592"). Returning nil keeps the word.
local function id_word(w)
  if #w >= 16 and not w:find('%X') then
    return '<hex>'
  elseif w:find('%d') and w:find('%a') then
    return '<id>'
  end
end

-- The error message as a pattern: the first 500 bytes, normalised. Order matters: quoted
-- values first (an id inside quotes is part of the value), numbers last (after the rules that
-- take whole words with digits in them).
local function normalise(message)
  -- The leading space lets a quote at the very start count as an opening quote.
  local s = ' ' .. cut(message, 500)
  -- A quote opens only after a non-word character, so "can't" is not a quote.
  s = s:gsub("([^%w])'[^']*'", '%1<str>')
  s = s:gsub('([^%w])"[^"]*"', '%1<str>')
  s = s:gsub('[%w._%%+%-]+@[%w%-]+%.[%w.%-]+', '<email>')
  s = s:gsub('%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x', '<id>')
  s = s:gsub('%f[%w]0[xX]%x+', '<hex>')
  s = s:gsub('%f[%w]%w%w%w%w%w%w%w%w+', id_word)
  s = s:gsub('%d+%.%d+', '<n>')
  s = s:gsub('%d+', '<n>')
  s = s:gsub('%s+', ' ')
  return (s:gsub('^ ', ''):gsub(' $', ''))
end

-- The group of a job type and error message: 16 hex digits of SHA-1, stable across versions as
-- long as the rules are, and safe in a URL path.
local function fingerprint(t, pattern)
  return string.sub(redis.sha1hex(t .. '\n' .. pattern), 1, 16)
end

local function group_key(P, fp)
  return P .. ':dlq:g:' .. fp
end

-- Files a dead job in its group: the fingerprint on the record (so a removal finds the group),
-- the id in the group's set by DLQ time, and the group's description, whose sample becomes this
-- job's error.
local function group_add(P, key, id, t, message, score)
  local pattern = normalise(message)
  local fp = fingerprint(t, pattern)
  redis.call('HSET', key, 'fp', fp)
  redis.call('ZADD', group_key(P, fp), score, id)
  redis.call('HSET', P .. ':dlq:groups', fp,
    cjson.encode({type = t, pattern = pattern, sample = cut(message, 1000)}))
end

-- Takes a job leaving the DLQ out of its group (before its record goes); an emptied group goes
-- with it. A job buried before the groups existed and not indexed yet has no `fp`: no group.
local function group_remove(P, key, id)
  local fp = redis.call('HGET', key, 'fp')
  if fp then
    local g = group_key(P, fp)
    redis.call('ZREM', g, id)
    if redis.call('EXISTS', g) == 0 then
      redis.call('HDEL', P .. ':dlq:groups', fp)
    end
  end
end

-- Jobs buried by a version without groups have no fingerprint. Each call indexes the DLQ
-- entries after a cursor (their DLQ time), at most n of them, and moves the cursor on, so the
-- first calls after an upgrade catch up in bounded steps and later ones read only the entries
-- buried since (already indexed by bury: a field check each). A bury is never dated before the
-- cursor (the time is Redis's), so no entry is passed over.
local function index_legacy(dlq, P, n)
  local ck = P .. ':dlq:groups:cursor'
  local from = redis.call('GET', ck) or '-inf'
  local batch = redis.call('ZRANGE', dlq, from, '+inf', 'BYSCORE', 'LIMIT', 0, n, 'WITHSCORES')
  if #batch == 0 then
    return
  end
  local last = batch[#batch]
  if #batch == 2 * n and batch[2] == last then
    -- n or more entries of one time (one reap buried them together): all of them, then on past it.
    batch = redis.call('ZRANGE', dlq, last, last, 'BYSCORE', 'WITHSCORES')
    last = '(' .. last
  end
  for i = 1, #batch, 2 do
    local key = P .. ':job:' .. batch[i]
    if redis.call('HEXISTS', key, 'fp') == 0 then
      local rec = redis.call('HMGET', key, 'type', 'error')
      if rec[1] then
        group_add(P, key, batch[i], rec[1], rec[2] or '', batch[i + 1])
      end
    end
  end
  redis.call('SET', ck, last)
end

-- Moves a job to the dead-letter queue (its record then never expires), and drops the oldest
-- entries past `cap`. Returns the ids dropped, so the caller can count and log them.
local function bury(dlq, counters, P, id, now, cap)
  local key = P .. ':job:' .. id
  redis.call('HSET', key, 'status', 'failed', 'completed_at', now)
  redis.call('HDEL', key, 'run_at')
  redis.call('PERSIST', key)
  -- index_legacy's cursor moves on with this entry when nothing before it waits to be indexed:
  -- the DLQ was empty, or the cursor had reached its newest entry. Otherwise a DLQ filled only
  -- by this version would be walked again, 1000 entries a call, until the cursor caught up.
  local ck = P .. ':dlq:groups:cursor'
  local newest = redis.call('ZRANGE', dlq, '+inf', '-inf', 'BYSCORE', 'REV', 'LIMIT', 0, 1,
    'WITHSCORES')
  local cursor = redis.call('GET', ck)
  if #newest == 0 or (cursor and tonumber((cursor:gsub('^%(', ''))) >= tonumber(newest[2])) then
    redis.call('SET', ck, now)
  end
  redis.call('ZADD', dlq, now, id)
  local rec = redis.call('HMGET', key, 'type', 'error')
  group_add(P, key, id, rec[1], rec[2] or '', now)
  redis.call('HINCRBY', counters, 'dead', 1)
  local mk = qk(P, (placement(key)), 'meta')
  redis.call('HINCRBY', mk, 'failed', 1)
  -- The queue's running total of jobs moved to the DLQ, for GET /stats/history.
  redis.call('HINCRBY', mk, 'dead', 1)
  local evicted = {}
  local over = redis.call('ZCARD', dlq) - cap
  if over > 0 then
    local old = redis.call('ZPOPMIN', dlq, over)
    for i = 1, #old, 2 do
      local okey = P .. ':job:' .. old[i]
      group_remove(P, okey, old[i])
      redis.call('HINCRBY', qk(P, (placement(okey)), 'meta'), 'failed', -1)
      redis.call('DEL', okey)
      evicted[#evicted + 1] = old[i]
    end
  end
  return evicted
end

-- Takes the selected jobs out of the DLQ and their groups; returns their ids. mode 'id' (value:
-- the id), 'type' (value: the type), 'all', or 'group' (value: the fingerprint; upto: the
-- latest DLQ time to take, µs or '+inf', so an action takes what its dry run counted and no job
-- buried since).
local function take_from_dlq(dlq, P, mode, value, upto)
  local ids
  if mode == 'id' then
    ids = {value}
  elseif mode == 'ids' then
    ids = {}
    for id in string.gmatch(value, '[^,]+') do
      ids[#ids + 1] = id
    end
  elseif mode == 'group' then
    ids = redis.call('ZRANGE', group_key(P, value), '-inf', upto, 'BYSCORE')
  else
    ids = redis.call('ZRANGE', dlq, 0, -1)
  end
  local taken = {}
  for _, id in ipairs(ids) do
    local key = P .. ':job:' .. id
    if mode ~= 'type' or redis.call('HGET', key, 'type') == value then
      if redis.call('ZREM', dlq, id) == 1 then
        group_remove(P, key, id)
        taken[#taken + 1] = id
      end
    end
  end
  return taken
end
