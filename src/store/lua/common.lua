-- Shared by every script: prepended to each one when it is loaded (see src/store/scripts.rs).
-- Key names follow docs/redis-keys.md: P is the key prefix, queue keys are P:q:{queue}:...,
-- type keys P:t:<type>....

-- Redis's clock in microseconds since the epoch: one clock for every process, so a skewed host
-- cannot run jobs early. (2^53 microseconds is year 2255; Lua's doubles hold it exactly.)
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

-- s cut to at most n bytes, never inside a UTF-8 character (the API decodes it as UTF-8).
local function cut(s, n)
  if #s <= n then
    return s
  end
  local i = n + 1
  while i > 1 and s:byte(i) >= 128 and s:byte(i) < 192 do
    i = i - 1
  end
  return s:sub(1, i - 1)
end

-- Appends the items of list b to list a.
local function extend(a, b)
  for _, v in ipairs(b) do
    a[#a + 1] = v
  end
  return a
end

-- A key of queue q. The queue's name sits in braces, so once the prefix carries no hash tag of
-- its own each queue's keys share one Redis Cluster slot of their own.
local function qk(P, q, what)
  return P .. ':q:{' .. q .. '}:' .. what
end

-- A key of job type t.
local function tk(P, t, what)
  if what then
    return P .. ':t:' .. t .. ':' .. what
  end
  return P .. ':t:' .. t
end

local LEVELS = {'high', 'normal', 'low'}

-- Whether any job type has a setting (pause, limits, breaker): P:types-active, kept by
-- control.lua, read once per script. Without one, the type steps are skipped, which keeps the
-- common case at one read.
local types_active_cache = nil
local function types_active(P)
  if types_active_cache == nil then
    types_active_cache = redis.call('SCARD', P .. ':types-active') > 0
  end
  return types_active_cache
end

-- The ready list of one group ('' = the queue's jobs without a group) at one priority level.
local function ready_key(P, q, g, lv)
  if g == '' then
    return qk(P, q, 'ready:' .. lv)
  end
  return qk(P, q, 'g:' .. g .. ':' .. lv)
end

-- Counter moves gathered during one script and written once at its end (a batch of claims of
-- one queue moves its count once): d[key][field] = delta.
local function bump(d, key, field, n)
  local h = d[key]
  if not h then
    h = {}
    d[key] = h
  end
  h[field] = (h[field] or 0) + n
end

local function flush(d)
  for key, h in pairs(d) do
    for field, n in pairs(h) do
      if n ~= 0 then
        -- A group's running count is dropped at 0, so a hash of tenants does not keep one
        -- field for every group ever seen.
        if redis.call('HINCRBY', key, field, n) == 0 and string.sub(field, 1, 4) == 'run:' then
          redis.call('HDEL', key, field)
        end
      end
    end
  end
end

-- Moves the running counts of a job that stops running: its queue, its type, its group.
local function bump_running(d, P, q, t, g, n)
  bump(d, qk(P, q, 'meta'), 'running', n)
  bump(d, tk(P, t), 'running', n)
  if g and g ~= '' then
    bump(d, qk(P, q, 'gstate'), 'run:' .. g, n)
  end
end

-- A job's queue, type, group and priority from its record; records written before named
-- queues existed have none and belong to 'default', normal priority, no group.
local function placement(key)
  local r = redis.call('HMGET', key, 'queue', 'type', 'group', 'priority')
  return r[1] or 'default', r[2] or '', r[3] or '', r[4] or 'normal'
end

-- A ready list of queue q went from empty to one job: its group joins the queue's rotation if
-- it is not there (the rotation may keep a group that has emptied; the claim step drops it
-- then). A queue's first group marks it 'grouped' (until then the claim step skips the
-- rotation), its first job of another level than normal marks it 'levels'.
local function became_ready(P, q, g, lv)
  if lv ~= 'normal' then
    redis.call('HSET', qk(P, q, 'meta'), 'levels', 1)
  end
  local rot = qk(P, q, 'groups')
  if not redis.call('LPOS', rot, g) then
    redis.call('RPUSH', rot, g)
    if g ~= '' then
      redis.call('HSET', qk(P, q, 'meta'), 'grouped', 1)
    end
  end
end

-- Makes a job ready to run in its queue: into its group's list for its level, at the head (a
-- job handed back keeps its place) or the tail. Returns whether the list was empty: only then
-- can a waiting process have a reason to look again (a job behind others changes nothing).
local function push_ready(P, q, g, lv, id, head)
  local len = redis.call(head and 'LPUSH' or 'RPUSH', ready_key(P, q, g, lv), id)
  if len == 1 then
    became_ready(P, q, g, lv)
  end
  return len == 1
end

-- Whether this Redis has LMPOP (7.0 and later, which also brought redis.REDIS_VERSION_NUM).
local has_lmpop = redis.REDIS_VERSION_NUM ~= nil

-- Pops the first job of one group of queue q: high, then normal, then low. One LMPOP where
-- Redis has it (7.0+), else one LPOP per level. Returns id, level.
local function pop_levels(P, q, g)
  local h, n, l = ready_key(P, q, g, 'high'), ready_key(P, q, g, 'normal'),
    ready_key(P, q, g, 'low')
  if has_lmpop then
    local r = redis.call('LMPOP', 3, h, n, l, 'LEFT')
    if not r then
      return nil
    end
    local lv = (r[1] == h and 'high') or (r[1] == n and 'normal') or 'low'
    return r[2][1], lv
  end
  for _, level in ipairs(LEVELS) do
    local id = redis.call('LPOP', ready_key(P, q, g, level))
    if id then
      return id, level
    end
  end
  return nil
end

-- Tells the worker processes waiting for work (each registered itself in P:waiters when its
-- claim found nothing) that there may be some: one token in each one's wake list, where its
-- fetcher blocks in BLMOVE.
local function wake(P)
  local waiting = redis.call('SMEMBERS', P .. ':waiters')
  if #waiting > 0 then
    for _, proc in ipairs(waiting) do
      local k = P .. ':wake:' .. proc
      redis.call('RPUSH', k, 1)
      redis.call('LTRIM', k, 0, 0)
      redis.call('PEXPIRE', k, 60000)
    end
    redis.call('DEL', P .. ':waiters')
  end
end

-- Puts a pending job of queue q back among its queue's ready jobs (status pending, its place
-- kept at the head when `head`), as a drain, the reaper, a DLQ retry or an unpark does.
local function make_ready(P, key, id, head, now)
  local q, _, g, lv = placement(key)
  push_ready(P, q, g, lv, id, head)
  redis.call('HSET', key, 'status', 'pending', 'updated_at', now)
  return q
end


-- Counts include the moves this script has gathered and not yet written (see bump).
local function pending_delta(d, key, field)
  local h = d[key]
  return h and h[field] or 0
end


-- The state of one job type, read once per script: its flags, limits, counts and breaker.
local function type_state(P, t, d)
  local m = redis.call('HMGET', tk(P, t), 'paused', 'conc', 'running', 'rate_n', 'rate_ms',
    'tat', 'b_state', 'b_until', 'b_probe', 'ptat', 'b_consec', 'b_ratio', 'b_window',
    'b_cool_ms', 'b_fails', 'b_hist')
  return {paused = m[1] == '1', conc = tonumber(m[2]),
    running = tonumber(m[3] or '0') + pending_delta(d, tk(P, t), 'running'),
    rate_n = m[4], rate_ms = m[5], tat = m[6], b_state = m[7] or 'closed',
    b_until = tonumber(m[8] or '0'), b_probe = m[9], ptat = m[10], b_consec = m[11],
    b_ratio = m[12], b_window = m[13], b_cool_ms = m[14], b_fails = m[15], b_hist = m[16],
    claimed = 0}
end





-- Whether this process still holds this claim of the job: the record carries the same claim
-- number, and the id is in the process's running list (it is taken out here). A job taken
-- back (by the reaper, a drain or the stranded-claim check) and claimed again has a newer
-- number; one taken back and not claimed again is no longer in the list. Returns the record's
-- fields {claim, unique, children, wf, cancel} (what its end must settle, see finish.lua), or
-- false.
local function release(running, key, id, token)
  local f = redis.call('HMGET', key, 'claim', 'unique', 'children', 'wf', 'cancel')
  if f[1] ~= token then
    return false
  end
  if redis.call('LREM', running, -1, id) == 0 then
    return false
  end
  return f
end

-- After a job of type t stops running: the breaker counts the outcome ('ok', 'fail', or nil for
-- neither), and a job of the type set aside for its concurrency limit gets the freed slot.
-- The job has already left the running counts in d. Returns 'opened' or 'closed' when the
-- breaker changed, else false.
local function type_after(P, t, id, outcome, now, d)
  if not types_active(P) then
    return false
  end
  local key = tk(P, t)
  local ts = type_state(P, t, d)
  local changed = false
  if ts.b_probe == id then
    redis.call('HDEL', key, 'b_probe')
  end
  if outcome and (ts.b_consec or ts.b_ratio) then
    local state, fails, hist = ts.b_state, tonumber(ts.b_fails or '0'), ts.b_hist or ''
    local window = tonumber(ts.b_window or '20')
    local bad = outcome == 'fail'
    if bad then
      fails = fails + 1
      hist = hist .. '1'
    else
      fails = 0
      hist = hist .. '0'
    end
    if #hist > window then
      hist = string.sub(hist, #hist - window + 1)
    end
    local open = false
    if state == 'half' and ts.b_probe == id then
      open = bad
      if not bad then
        state = 'closed'
        changed = 'closed'
        fails, hist = 0, ''
        redis.call('SADD', P .. ':parked-types', t)
      end
    elseif state == 'closed' and bad then
      if ts.b_consec and fails >= tonumber(ts.b_consec) then
        open = true
      elseif ts.b_ratio and #hist >= window then
        local _, nbad = string.gsub(hist, '1', '')
        open = nbad >= tonumber(ts.b_ratio) * window
      end
    end
    if open then
      state = 'open'
      changed = 'opened'
      fails, hist = 0, ''
      redis.call('HSET', key, 'b_until', now + tonumber(ts.b_cool_ms or '30000') * 1000)
    end
    redis.call('HSET', key, 'b_state', state, 'b_fails', fails, 'b_hist', hist)
  end
  if ts.conc and ts.running < ts.conc then
    local parked = redis.call('LPOP', tk(P, t, 'parked'))
    if parked then
      local pkey = P .. ':job:' .. parked
      redis.call('HDEL', pkey, 'parked')
      make_ready(P, pkey, parked, true, now)
    end
  end
  return changed
end





-- The queues of a claim's selection sel = {mode, seed, queue, weight, ...} and their weights:
-- mode 'all' serves every queue that exists, with equal weights.
local function selection(P, sel)
  local names, weights, total = {}, {}, 0
  if sel[1] == 'all' then
    names = redis.call('SMEMBERS', P .. ':queues')
    for i = 1, #names do
      weights[i] = 1
    end
    total = #names
  else
    for i = 3, #sel, 2 do
      names[#names + 1] = sel[i]
      weights[#weights + 1] = tonumber(sel[i + 1])
      total = total + weights[#weights]
    end
  end
  return names, weights, total
end

-- The queue tried first for the next job, drawn with probability proportional to its weight by
-- a small LCG (Redis seeds math.random the same way on every call, so the caller sends a seed),
-- or none in strict order. Returns the LCG's next state and the queue's index.
local function draw(r, mode, weights, total)
  if mode == 'strict' or total == 0 then
    return r, nil
  end
  r = (r * 48271) % 2147483647
  local pick = r % total
  for i = 1, #weights do
    pick = pick - weights[i]
    if pick < 0 then
      return r, i
    end
  end
  return r, nil
end

-- The index of the queue tried at `step` of a claim: 0 is the one drawn first (none in strict
-- order), then every other in the order listed, the drawn one skipped (nil there).
local function tried(step, first)
  if step == 0 then
    return first
  elseif step == first then
    return nil
  end
  return step
end

-- The fields of a job record the claim step reads.
local function claim_read(key)
  return redis.call('HMGET', key, 'type', 'payload', 'max_attempts', 'timeout_secs', 'attempt',
    'run_at', 'claim', 'updated_at', 'parked', 'expires', 'parents', 'created_at', 'traceparent',
    'tracestate')
end

-- Whether a record's fields f = {claim, unique, children, wf, cancel} (see release) leave
-- anything for its end to settle (see finish.lua).
local function has_ties(f)
  return f[2] or f[3] or f[4] or f[5]
end

-- Whether a claimed job's start deadline (record fields from claim_read) has passed: it must
-- not start (see expire_job in finish.lua).
local function past_deadline(rec, now)
  return rec[10] and tonumber(rec[10]) < now
end

-- Marks a claimed job (record fields from claim_read) running: attempt and claim number +1,
-- no due time and no parking reason any more. Returns it as the claim step answers it: id,
-- type, payload, attempt, max_attempts, timeout_secs ('' = default), claim number, queue,
-- group, priority, ready since µs, parent ids ('' = none), traceparent and tracestate ('' =
-- none).
local function start_claimed(key, id, rec, q, g, lv, now)
  local attempt = tonumber(rec[5] or '0') + 1
  local token = tonumber(rec[7] or '0') + 1
  redis.call('HSET', key, 'status', 'running', 'attempt', attempt, 'started_at', now,
    'updated_at', now, 'claim', token)
  if rec[6] or rec[9] then
    redis.call('HDEL', key, 'run_at', 'parked')
  end
  return {id, rec[1], rec[2] or 'null', attempt, rec[3] or '1', rec[4] or '', token, q, g, lv,
    rec[8] or rec[12] or now, rec[11] or '', rec[13] or '', rec[14] or ''}
end
