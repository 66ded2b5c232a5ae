-- The short way of claiming: prepended, after common.lua and finish.lua, to the
-- acknowledgements (complete, fail), which claim the worker's next job in the common case.

-- What the acknowledgements of one script call share: Redis's clock, read once; the queues of
-- the process's selection and whether its heartbeat exists, read by the first next_fast; the
-- settings of the queues claimed from (c.meta, see next_fast); the ids completed and the
-- counts no step of the call reads (completed, retried, pending), written once at the end by
-- flush_acks. A group commit (ack.lua) of n jobs so runs up to 8 commands fewer per job than
-- n calls would (TIME, SMEMBERS, EXISTS, LPUSH, HMGET, three HINCRBY).
local function new_acks(heartbeat)
  return {now = now_us(), heartbeat = heartbeat, done = {}, counts = {}}
end

-- A job ended in a way that may make others ready (its children, a workflow's next nodes),
-- which can mark their queue 'grouped' or 'levels': the queues' settings are read again.
local function forget_meta(c)
  c.meta = nil
end

-- Writes what the call's acknowledgements gathered in c: the completed ids into the list of
-- recent completions (trimmed to c.keep in steps, not on every push), and the counts.
local function flush_acks(c, completed)
  if #c.done > 0 and redis.call('LPUSH', completed, unpack(c.done)) > c.keep + 100 then
    redis.call('LTRIM', completed, 0, c.keep - 1)
  end
  flush(c.counts)
end

-- The next job for a worker that just finished one of queue q_ack and type t_ack (no group),
-- in the common case only: one job asked for, and the queues tried, in the order claim() would
-- try them (the first picked by the same draw, then the others as listed), have no pause,
-- rate, group or type setting. A queue at its concurrency limit or empty is passed over, as
-- claim() does. Fewer steps than claim(), the same outcome; it writes nothing unless it
-- claims (or ends a job past its start deadline, gathered in ev). Returns the job as claim()
-- does (12 entries), or nil when the caller must go the general way (the fetcher's claim).
local function next_fast(P, running, c, sel, q_ack, t_ack, ev)
  local now = c.now
  if c.names == nil then
    c.names, c.weights, c.total = selection(P, sel)
    -- The heartbeat named twice: 2 or 3 when it exists, and odd when the subscriptions' index
    -- does (see events.lua), so the call learns both from the one command it makes anyway.
    local n = redis.call('EXISTS', c.heartbeat, c.heartbeat, P .. ':subscriptions:index')
    c.alive = n >= 2
    if n % 2 == 0 and subs_index_cache == nil then
      subs_index_cache = false
    end
  end
  local names, weights, total = c.names, c.weights, c.total
  local _, first = draw(tonumber(sel[2]) % 2147483647, sel[1], weights, total)
  if not c.alive then
    return nil
  end
  local checked_ack = false
  for step = 0, #names do
    local i = tried(step, first)
    if i then
      local q = names[i]
      local mk = qk(P, q, 'meta')
      local m = c.meta and c.meta[q]
      if not m then
        m = redis.call('HMGET', mk, 'paused', 'conc', 'running', 'rate_n', 'gconc',
          'grate_n', 'grouped', 'typed', 'levels')
        -- Without a concurrency limit none of these fields changes during the call unless a
        -- job ends on the way (which may make others ready: see forget_meta).
        if not m[2] then
          c.meta = c.meta or {}
          c.meta[q] = m
        end
      end
      if m[1] or m[4] or m[5] or m[6] or m[7] or m[8] then
        return nil
      end
      local same = q == q_ack
      if not same and not checked_ack then
        if redis.call('HGET', qk(P, q_ack, 'meta'), 'typed') then
          return nil
        end
        checked_ack = true
      end
      local full = false
      if m[2] then
        local room = tonumber(m[2]) - (tonumber(m[3] or '0') - (same and 1 or 0))
        if room <= 0 then
          -- Passed over, as claim() passes over a queue at its limit.
          full = true
        elseif redis.call('EXISTS', P .. ':waiters') == 1 then
          -- Other processes wait for work: the freed slot is not kept by this worker. The
          -- general way wakes them and every fetcher may take it, so the processes share a
          -- limited queue instead of the first keeping its slots.
          return nil
        end
      end
      if not full then
        local id, lv
        if m[9] then
          id, lv = pop_levels(P, q, '')
          if id then
            redis.call('RPUSH', running, id)
          end
        else
          id, lv = redis.call('LMOVE', qk(P, q, 'ready:normal'), running, 'LEFT', 'RIGHT'),
            'normal'
        end
        if id then
          local key = P .. ':job:' .. id
          local rec = claim_read(key)
          bump(c.counts, mk, 'pending', -1)
          if not rec[1] or past_deadline(rec, now) then
            -- An id without a record cannot run: it is dropped (it was counted pending). A job
            -- past its start deadline ends expired; the fetcher's claim takes the next one.
            redis.call('LREM', running, -1, id)
            if rec[1] then
              forget_meta(c)
              finish().expire_job(P, key, id, q, rec[1], now, ev)
            end
            return nil
          end
          local job = start_claimed(key, id, rec, q, '', lv, now)
          -- The finished job leaves the running counts and this one joins them: equal moves
          -- cancel.
          if not same then
            redis.call('HINCRBY', qk(P, q_ack, 'meta'), 'running', -1)
            redis.call('HINCRBY', mk, 'running', 1)
            wake(P)
          end
          if rec[1] ~= t_ack then
            redis.call('HINCRBY', tk(P, t_ack), 'running', -1)
            redis.call('HINCRBY', tk(P, rec[1]), 'running', 1)
          end
          return job
        end
      end
    end
  end
  return nil
end
