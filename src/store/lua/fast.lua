-- The short way of claiming: prepended, after common.lua and finish.lua, to the
-- acknowledgements (complete, fail), which claim the worker's next job in the common case.

-- The next job for a worker that just finished one of queue q_ack and type t_ack (no group),
-- in the common case only: one job asked for, and the queues tried, in the order claim() would
-- try them (the first picked by the same draw, then the others as listed), have no pause,
-- rate, group or type setting. A queue at its concurrency limit or empty is passed over, as
-- claim() does. Fewer steps than claim(), the same outcome; it writes nothing unless it
-- claims (or ends a job past its start deadline, gathered in ev). Returns the job as claim()
-- does (12 entries), or nil when the caller must go the general way (the fetcher's claim).
local function next_fast(P, running, heartbeat, sel, now, q_ack, t_ack, ev)
  local names, weights, total = selection(P, sel)
  local _, first = draw(tonumber(sel[2]) % 2147483647, sel[1], weights, total)
  if redis.call('EXISTS', heartbeat) == 0 then
    return nil
  end
  local checked_ack = false
  for step = 0, #names do
    local i = tried(step, first)
    if i then
      local q = names[i]
      local mk = qk(P, q, 'meta')
      local m = redis.call('HMGET', mk, 'paused', 'conc', 'running', 'rate_n', 'gconc',
        'grate_n', 'grouped', 'typed', 'levels')
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
          redis.call('HINCRBY', mk, 'pending', -1)
          if not rec[1] or past_deadline(rec, now) then
            -- An id without a record cannot run: it is dropped (it was counted pending). A job
            -- past its start deadline ends expired; the fetcher's claim takes the next one.
            redis.call('LREM', running, -1, id)
            if rec[1] then
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
