-- Event subscriptions, the writing side: a step that ends or fails a job (or misses a schedule's
-- tick, or opens a type's breaker) appends one small record to its partition's outbox,
-- P:events, in the same atomic step, but only when a subscription of this partition wants that
-- event (kind, queue, type). The dispatcher (src/worker/dispatch.rs, publish.lua) turns each
-- record into one webhook job per matching subscription. Prepended, after common.lua, to every
-- script that carries finish.lua (any of them may cancel or expire a job) and to fire.lua.
--
-- What a call costs without subscriptions: the index P:subscriptions:index is absent, and
-- `wants` finds that out once per call: the short claim folds it into the heartbeat check it
-- makes anyway (see next_fast in fast.lua), else one GET. Records are built only when wanted.

-- Most records the outbox holds: past it a new record is dropped and counted in
-- P:events:dropped (the dispatcher logs and counts those). Bounds the outbox to about 170 MB
-- even with every record carrying a 16 KiB result.
local OUTBOX_MAX = 10000
-- Longest result (JSON text) or error (bytes) a record carries: a longer result is left out
-- (flagged), a longer error cut.
local EVENT_TEXT_MAX = 16384

-- The partition's index of what its subscriptions want (see subscriptions.lua), read at most
-- once per call: nil until read, false when there is no subscription.
local subs_index_cache = nil

-- Whether a subscription wants event `kind` of a job of queue q and type t: its index lists
-- `kind|queue|type` for each subscription and event, `*` for a filter left open.
local function wants(P, kind, q, t)
  if subs_index_cache == nil then
    subs_index_cache = redis.call('GET', P .. ':subscriptions:index') or false
  end
  local ix = subs_index_cache
  if not ix then
    return false
  end
  local k = ',' .. kind .. '|'
  return (string.find(ix, k .. '*|*,', 1, true) or string.find(ix, k .. q .. '|*,', 1, true)
    or string.find(ix, k .. '*|' .. t .. ',', 1, true)
    or string.find(ix, k .. q .. '|' .. t .. ',', 1, true)) ~= nil
end

-- The functions that write records, built on first use in a call (as finish() is): most calls
-- write none.
local events_lib = nil
local function events()
  if events_lib then
    return events_lib
  end

  -- s (or nil) cut to at most EVENT_TEXT_MAX bytes (see cut in common.lua).
  local function clip(s)
    return s and cut(s, EVENT_TEXT_MAX)
  end

  -- Appends record `rec` (a table; its kind in rec.k) to the outbox, stamped with `now` (µs,
  -- as a string: cjson keeps only 14 digits of a number).
  local function emit(P, rec, now)
    rec.at = string.format('%.0f', now)
    local k = P .. ':events'
    if redis.call('RPUSH', k, cjson.encode(rec)) > OUTBOX_MAX then
      redis.call('RPOP', k)
      redis.call('INCR', P .. ':events:dropped')
    end
  end

  -- An event of job `id` (record `key`, queue q, type t) that a subscription wants: its
  -- attempt and status are read from the record, which is left as the step made it. `x` holds
  -- what the kind adds: r (result JSON), e (error; true: the record's), d (detail: a retry's due
  -- time, a cancellation's stage). A webhook delivery job (its record has `sub`) makes no event,
  -- so no subscription can feed on its own deliveries.
  local function job(P, kind, key, id, q, t, now, x)
    local f = redis.call('HMGET', key, 'sub', 'attempt', 'status', 'error')
    if f[1] then
      return
    end
    local rec = {k = kind, j = id, q = q, t = t, a = f[2] or '0', s = f[3] or ''}
    if x then
      if x.r then
        if #x.r <= EVENT_TEXT_MAX then
          rec.r = x.r
        else
          rec.rt = 1
        end
      end
      if x.e == true then
        rec.e = clip(f[4])
      elseif x.e then
        rec.e = clip(x.e)
      end
      rec.d = x.d
    end
    emit(P, rec, now)
  end

  events_lib = {emit = emit, job = job}
  return events_lib
end
