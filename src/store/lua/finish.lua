-- The ends of a job's life and what each end must settle: its unique key, its workflow's count
-- of unfinished nodes, and its children (workflow dependencies). Prepended, after common.lua,
-- to every script that ends a job or makes a waiting one ready (see src/store/scripts.rs).
-- Events for the caller's log and metrics are gathered in `ev`, five entries each: kind
-- ('cancelled', 'expired', 'ready'), id, type, queue, detail (the stage a job was cancelled in,
-- or the reason); a cancellation or expiry a subscription wants goes to the outbox too
-- (events.lua, prepended before this file).
--
-- The functions are built on first use in a call (`finish()`), not on every call: every
-- function of a script is defined anew each time it runs, and the hot acknowledgements need
-- these only when a job has something to settle.

local finish_lib = nil
local function finish()
  if finish_lib then
    return finish_lib
  end
  -- The time a record ended as cancelled or expired is kept: the record's own 'ttl' (written
  -- with every job a script may end that way: one with a start deadline or parents, and one
  -- whose cancellation was asked for), else JOB_TTL_SECS's default.
  local function record_ttl(key)
    return tonumber(redis.call('HGET', key, 'ttl') or '604800')
  end

  local function event(ev, kind, id, t, q, detail)
    extend(ev, {kind, id, t, q, detail or ''})
  end

  local settle

  -- A waiting job whose parents have all finished: ready (or scheduled when its delay has not
  -- passed yet), counted pending in its queue.
  local function release_waiting(P, key, id, now, ev)
    local q, t, g, lv = placement(key)
    redis.call('SREM', qk(P, q, 'waiting'), id)
    redis.call('HINCRBY', qk(P, q, 'meta'), 'waiting', -1)
    local due = tonumber(redis.call('HGET', key, 'run_at') or '0')
    redis.call('HSET', key, 'status', 'pending', 'updated_at', now)
    if due > now then
      redis.call('ZADD', qk(P, q, 'scheduled'), due, id)
    else
      redis.call('HDEL', key, 'run_at')
      push_ready(P, q, g, lv, id, false)
      redis.call('HINCRBY', qk(P, q, 'meta'), 'pending', 1)
      wake(P)
    end
    event(ev, 'ready', id, t, q, 'its parents have finished')
  end

  -- Takes a job that is not running out of wherever it waits (its ready list, the scheduled
  -- set, its type's parking list, or its queue's waiting set) and ends it as cancelled, then
  -- settles it. Returns the stage it was cancelled in ('pending', 'scheduled', 'waiting'), or
  -- nil when the job was not in one of those.
  local function cancel_waiting_job(P, key, id, now, why, ev)
    local status = redis.call('HGET', key, 'status')
    local q, t, g, lv = placement(key)
    local stage
    if status == 'waiting' then
      redis.call('SREM', qk(P, q, 'waiting'), id)
      redis.call('HINCRBY', qk(P, q, 'meta'), 'waiting', -1)
      stage = 'waiting'
    elseif status == 'pending' then
      if redis.call('ZREM', qk(P, q, 'scheduled'), id) == 1 then
        stage = 'scheduled'
      else
        stage = 'pending'
        if redis.call('LREM', ready_key(P, q, g, lv), 1, id) == 0 then
          redis.call('LREM', tk(P, t, 'parked'), 1, id)
        end
        redis.call('HINCRBY', qk(P, q, 'meta'), 'pending', -1)
      end
    else
      return nil
    end
    redis.call('HSET', key, 'status', 'cancelled', 'completed_at', now, 'updated_at', now,
      'error', why)
    redis.call('HDEL', key, 'run_at', 'parked')
    redis.call('EXPIRE', key, record_ttl(key))
    redis.call('HINCRBY', P .. ':counters', 'cancelled', 1)
    event(ev, 'cancelled', id, t, q, stage)
    if wants(P, 'job.cancelled', q, t) then
      events().job(P, 'job.cancelled', key, id, q, t, now, {e = why, d = stage})
    end
    settle(P, key, id, false, now, ev)
    return stage
  end

  -- A job that was running ends as cancelled (its cancellation was asked for while it ran): the
  -- caller has taken it out of the running list and counts, and recorded the attempt's error
  -- (else `why` is its error).
  local function end_cancelled(P, key, id, q, t, now, ev, why)
    redis.call('HSET', key, 'status', 'cancelled', 'completed_at', now, 'updated_at', now)
    if why then
      redis.call('HSET', key, 'error', why)
    end
    redis.call('HDEL', key, 'run_at', 'parked')
    redis.call('EXPIRE', key, record_ttl(key))
    redis.call('HINCRBY', P .. ':counters', 'cancelled', 1)
    event(ev, 'cancelled', id, t, q, 'running')
    if wants(P, 'job.cancelled', q, t) then
      events().job(P, 'job.cancelled', key, id, q, t, now, {e = why or true, d = 'running'})
    end
    settle(P, key, id, false, now, ev)
  end

  -- A job whose start deadline passed before it could start: it never runs. The caller has
  -- taken it out of its ready list and its queue's pending count.
  local function expire_job(P, key, id, q, t, now, ev)
    redis.call('HSET', key, 'status', 'expired', 'completed_at', now, 'updated_at', now)
    redis.call('HDEL', key, 'run_at', 'parked')
    redis.call('EXPIRE', key, record_ttl(key))
    redis.call('HINCRBY', P .. ':counters', 'expired', 1)
    event(ev, 'expired', id, t, q)
    if wants(P, 'job.expired', q, t) then
      events().job(P, 'job.expired', key, id, q, t, now)
    end
    settle(P, key, id, false, now, ev)
  end

  -- One parent of waiting job `child` has ended: completed (ok) or not. A child whose parents
  -- have all ended becomes ready; one whose parent failed, was cancelled or expired is
  -- cancelled with its own descendants, unless it asked to run anyway (on_parent_failure run).
  local function parent_ended(P, child, parent, ok, now, ev)
    local key = P .. ':job:' .. child
    local c = redis.call('HMGET', key, 'status', 'opf')
    if c[1] ~= 'waiting' then
      return
    end
    if ok or c[2] == 'run' then
      if redis.call('HINCRBY', key, 'deps', -1) <= 0 then
        release_waiting(P, key, child, now, ev)
      end
    else
      cancel_waiting_job(P, key, child, now, 'cancelled: parent ' .. parent .. ' did not complete',
        ev)
    end
  end

  -- What every end of a job settles (completed, failed into the DLQ, cancelled, expired): its
  -- unique key is released, its workflow counts one node fewer to finish (and expires with its
  -- last node), its pending cancellation is forgotten, and its children learn of it. `f` are the
  -- record's fields {claim, unique, children, wf, cancel} when the caller has read them.
  settle = function(P, key, id, ok, now, ev, f)
    if not f then
      f = redis.call('HMGET', key, 'claim', 'unique', 'children', 'wf', 'cancel')
    end
    if f[2] then
      local uk = P .. ':uniq:' .. f[2]
      if redis.call('GET', uk) == id then
        redis.call('DEL', uk)
      end
    end
    if f[5] then
      redis.call('SREM', P .. ':cancelling', id)
    end
    if f[4] then
      local wk = P .. ':wf:' .. f[4]
      if redis.call('HINCRBY', wk, 'left', -1) <= 0 then
        redis.call('EXPIRE', wk, tonumber(redis.call('HGET', wk, 'ttl') or '604800'))
      end
    end
    if f[3] then
      for child in string.gmatch(f[3], '[^,]+') do
        parent_ended(P, child, id, ok, now, ev)
      end
    end
  end

  finish_lib = {settle = settle, cancel_waiting_job = cancel_waiting_job,
    end_cancelled = end_cancelled, expire_job = expire_job}
  return finish_lib
end
