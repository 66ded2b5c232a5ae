-- The general claim step and what only some scripts need: prepended, after common.lua and
-- finish.lua (a claim ends jobs past their start deadline), to
-- the scripts that use it (see src/store/scripts.rs), so the hot acknowledgements (complete,
-- fail) do not define them on every call.

-- GCRA with no burst: a rate of n per period allows one start every period/n, so no window of
-- one period ever holds more than n. `tat` is the theoretical arrival time of the next start.
-- Returns whether a start is allowed now, and the tat to store if it is taken.
local function gcra(tat, n, period_ms, now)
  local t = tonumber(tat or '0')
  if t > now then
    return false, t
  end
  return true, now + (tonumber(period_ms) * 1000) / tonumber(n)
end

-- Whether a queue's or a group's limits hold its next start back: `running` at or over the
-- concurrency limit `conc`, or its rate (GCRA state `tat`, n per period_ms) not yet allowing
-- one, in which case the time it will is noted in limits.hint. Either limit may be absent.
local function held_back(running, conc, tat, n, period_ms, now, limits)
  if conc and running >= conc then
    return true
  end
  if n then
    local ok, next_tat = gcra(tat, n, period_ms, now)
    if not ok then
      limits.hint = math.min(limits.hint or next_tat, next_tat)
      return true
    end
  end
  return false
end

-- The state of one queue during a claim: its flags, limits and counts, read once per script.
local function queue_state(P, q, d)
  local mk = qk(P, q, 'meta')
  local m = redis.call('HMGET', mk, 'paused', 'conc', 'running', 'rate_n',
    'rate_ms', 'tat', 'gconc', 'grate_n', 'grate_ms', 'grouped')
  return {paused = m[1] == '1', conc = tonumber(m[2]),
    running = tonumber(m[3] or '0') + pending_delta(d, mk, 'running'),
    rate_n = m[4], rate_ms = m[5], tat = m[6], gconc = tonumber(m[7]), grate_n = m[8],
    grate_ms = m[9], grouped = m[10] == '1', claimed = 0, groups = {}, empty = false}
end

-- Sets a job aside because of its type (paused, at its concurrency limit, or its breaker open):
-- it stays pending, in the type's parking list, and goes back to the head of its queue when the
-- reason has passed (the maintenance tick, a resume, or a finished job of the type).
local function park(P, t, key, id, reason)
  redis.call('RPUSH', tk(P, t, 'parked'), id)
  redis.call('SADD', P .. ':parked-types', t)
  redis.call('HSET', key, 'parked', reason)
end

-- Why a job of type state ts cannot start now, or nil if it can. A breaker whose cool-down has
-- passed lets exactly one job through as its probe.
local function type_block(P, t, ts, id, now)
  if ts.paused then
    return 'type_paused'
  end
  if ts.b_state == 'open' then
    if now < ts.b_until then
      return 'circuit_open'
    end
    ts.b_state = 'half'
    redis.call('HSET', tk(P, t), 'b_state', 'half')
  end
  if ts.b_state == 'half' then
    if ts.b_probe then
      return 'circuit_open'
    end
  end
  if ts.conc and ts.running + ts.claimed >= ts.conc then
    return 'concurrency_limit'
  end
  return nil
end

-- Takes the next job of queue q that may start: groups in turn (round-robin), within a group
-- high before normal before low, FIFO within a level. Jobs whose type cannot start are parked
-- on the way. Returns id, record fields, group, level; nil when nothing can start.
local function take(P, q, qs, types, now, limits, d)
  local rot = qk(P, q, 'groups')
  local skipped = 0
  for _ = 1, 64 do
    -- A queue that never had a group has only the '' group: no rotation to turn.
    local g = ''
    if qs.grouped then
      g = redis.call('LMOVE', rot, rot, 'LEFT', 'RIGHT')
    end
    if not g then
      qs.empty = true
      return nil
    end
    local gs = qs.groups[g]
    if g ~= '' and not gs then
      local gk = qk(P, q, 'gstate')
      local st = redis.call('HMGET', gk, 'run:' .. g, 'tat:' .. g)
      gs = {running = tonumber(st[1] or '0') + pending_delta(d, gk, 'run:' .. g), tat = st[2],
        claimed = 0}
      qs.groups[g] = gs
    end
    local blocked = gs and held_back(gs.running + gs.claimed, qs.gconc, gs.tat, qs.grate_n,
      qs.grate_ms, now, limits)
    if blocked then
      skipped = skipped + 1
      if skipped >= redis.call('LLEN', rot) then
        return nil
      end
    else
      local id, lv = pop_levels(P, q, g)
      if not id and not qs.grouped then
        qs.empty = true
        return nil
      elseif not id then
        redis.call('LREM', rot, 0, g)
      else
        local key = P .. ':job:' .. id
        local rec = claim_read(key)
        if not rec[1] or past_deadline(rec, now) then
          -- An id without a record cannot run; it was counted pending, and is dropped. A job
          -- past its start deadline ends expired.
          limits.dropped[q] = (limits.dropped[q] or 0) + 1
          if rec[1] then
            finish().expire_job(P, key, id, q, rec[1], now, limits.ev)
          end
        else
          local t = rec[1]
          local ts = types[t]
          if not types_active(P) then
            ts = nil
          elseif not ts then
            ts = type_state(P, t, d)
            types[t] = ts
          end
          local why = ts and type_block(P, t, ts, id, now)
          if not ts then
            why = nil
          elseif not why and ts.rate_n then
            local ok, tat = gcra(ts.tat, ts.rate_n, ts.rate_ms, now)
            if not ok then
              -- Over its type's rate: back to scheduled (no attempt used), so the queue behind
              -- it is not held up. Jobs set back this way get successive free starts of the
              -- type (ptat), so they come back one per interval rather than all at once.
              local due = math.max(tonumber(ts.ptat or '0'), tat)
              ts.ptat = due + (tonumber(ts.rate_ms) * 1000) / tonumber(ts.rate_n)
              ts.ptat_dirty = true
              redis.call('ZADD', qk(P, q, 'scheduled'), due, id)
              redis.call('HSET', key, 'run_at', due, 'parked', 'rate_limit')
              limits.dropped[q] = (limits.dropped[q] or 0) + 1
              why = 'rate_limit'
            else
              ts.tat = tat
              ts.tat_dirty = true
            end
          elseif why then
            park(P, t, key, id, why)
          end
          if not why then
            if gs then
              gs.claimed = gs.claimed + 1
              if qs.grate_n then
                local _, tat = gcra(gs.tat, qs.grate_n, qs.grate_ms, now)
                gs.tat = tat
                gs.tat_dirty = true
              end
            end
            if ts and ts.b_state == 'half' then
              ts.b_probe = id
              redis.call('HSET', tk(P, t), 'b_probe', id)
            end
            if ts then
              ts.claimed = ts.claimed + 1
            end
            return id, rec, g, lv
          end
        end
      end
    end
  end
  return nil
end

-- Claims up to n jobs for one worker process from the queues it serves, in the order of
-- `sel` = {mode, seed, q1, w1, q2, w2, ...}: mode 'strict' tries the queues in the order given,
-- 'weighted' picks a first queue per job with probability proportional to its weight then tries
-- the others, 'all' serves every queue that exists with equal weights. A paused queue, one at
-- its concurrency limit or over its rate is passed over; a job whose type cannot start is set
-- aside (see park). Each claimed id moves into the process's running list, its record is marked
-- running, the attempt counted and the claim numbered (the claim number, field 'claim', is the
-- token an acknowledgement must present).
-- Returns a flat list, 12 entries per job (id, type, payload, attempt, max_attempts,
-- timeout_secs ('' = default), claim number, queue, group, priority, ready since µs, parent
-- ids), the count claimed, and the earliest time a rate limit lets the next job start (µs) or
-- false. The caller moves the global running counter. Jobs found past their start deadline
-- end expired on the way, their events gathered in ev.
-- A process whose heartbeat key is missing (never written, expired, or reaped) claims nothing
-- and gets nil: were it to die then, no reaper would look at its running list.
local function claim(P, running, heartbeat, sel, n, now, d, ev)
  if n > 0 and redis.call('EXISTS', heartbeat) == 0 then
    return nil, 0, false
  end
  local states, types = {}, {}
  local names, weights, total = {}, {}, 0
  if n > 0 then
    names, weights, total = selection(P, sel)
  end
  local out, claimed = {}, 0
  local limits = {hint = nil, dropped = {}, ev = ev}
  local r = tonumber(sel[2]) % 2147483647
  for _ = 1, n do
    local first
    r, first = draw(r, sel[1], weights, total)
    local got = false
    for step = 0, #names do
      local i = tried(step, first)
      if i then
        local q = names[i]
        local qs = states[q]
        if not qs then
          qs = queue_state(P, q, d)
          states[q] = qs
        end
        if not qs.paused and not qs.empty and not held_back(qs.running + qs.claimed, qs.conc,
          qs.tat, qs.rate_n, qs.rate_ms, now, limits) then
          local id, rec, g, lv = take(P, q, qs, types, now, limits, d)
          if not id then
            -- Nothing more can start from this queue during this call.
            qs.empty = true
          else
            if qs.rate_n then
              local _, tat = gcra(qs.tat, qs.rate_n, qs.rate_ms, now)
              qs.tat = tat
              qs.tat_dirty = true
            end
            qs.claimed = qs.claimed + 1
            redis.call('RPUSH', running, id)
            extend(out, start_claimed(P .. ':job:' .. id, id, rec, q, g, lv, now))
            bump(d, qk(P, q, 'meta'), 'pending', -1)
            bump_running(d, P, q, rec[1], g, 1)
            claimed = claimed + 1
            got = true
            break
          end
        end
      end
    end
    if not got then
      break
    end
  end
  for q, qs in pairs(states) do
    if qs.tat_dirty then
      redis.call('HSET', qk(P, q, 'meta'), 'tat', qs.tat)
    end
    for g, gs in pairs(qs.groups) do
      if gs.tat_dirty then
        redis.call('HSET', qk(P, q, 'gstate'), 'tat:' .. g, gs.tat)
      end
    end
  end
  for t, ts in pairs(types) do
    if ts.tat_dirty then
      redis.call('HSET', tk(P, t), 'tat', ts.tat)
    end
    if ts.ptat_dirty then
      redis.call('HSET', tk(P, t), 'ptat', ts.ptat)
    end
  end
  for q, k in pairs(limits.dropped) do
    bump(d, qk(P, q, 'meta'), 'pending', -k)
  end
  return out, claimed, limits.hint or false
end

-- Sends jobs of type t that were set aside (see park) back to the head of their queues, in
-- the order they were set aside, as far as the type's state allows and at most max of them.
-- Returns how many moved, and when the type's breaker cool-down ends if that is what holds
-- the rest (µs), else false.
local function unpark_type(P, t, max, now)
  local list = tk(P, t, 'parked')
  local ts = type_state(P, t, {})
  local allow = max
  local until_us = false
  if ts.paused then
    allow = 0
  elseif ts.b_state == 'open' and now < ts.b_until then
    allow = 0
    until_us = ts.b_until
  elseif ts.b_state ~= 'closed' then
    -- Cool-down over: one job goes through as the probe (the claim step marks it).
    allow = ts.b_probe and 0 or 1
  end
  if ts.conc then
    allow = math.min(allow, math.max(ts.conc - ts.running, 0))
  end
  local ids = {}
  if allow > 0 then
    ids = redis.call('LRANGE', list, 0, allow - 1)
    if #ids > 0 then
      redis.call('LTRIM', list, #ids, -1)
    end
  end
  for i = #ids, 1, -1 do
    local key = P .. ':job:' .. ids[i]
    redis.call('HDEL', key, 'parked')
    make_ready(P, key, ids[i], true, now)
  end
  if redis.call('LLEN', list) == 0 then
    redis.call('SREM', P .. ':parked-types', t)
  end
  return #ids, until_us
end
