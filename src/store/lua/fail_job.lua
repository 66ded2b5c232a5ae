-- fail.lua's step as a function of its keys K and arguments A (see there), the selection for
-- the next claim and what the call's acknowledgements share (c, see new_acks in fast.lua), so
-- that ack.lua takes it for each job of a group commit.
local function fail_job(K, A, sel, c)
  local P, id, key = A[1], A[2], K[4]
  local f = release(K[1], key, id, A[8])
  if not f then
    return {0}
  end
  local now = c.now
  local q, t, g = A[9], A[10], A[11]
  local mode = A[5]
  local d, ev = {}, {}
  bump_running(d, P, q, t, g, -1)
  local out, outcome
  if f[5] then
    push_error(key, A[3], now)
    forget_meta(c)
    finish().end_cancelled(P, key, id, q, t, now, ev)
    out = {4, now}
  elseif mode == 'snooze' then
    local snoozes = tonumber(redis.call('HGET', key, 'snoozes') or '0')
    if snoozes < tonumber(A[12]) then
      local due = now + tonumber(A[4]) * 1000
      redis.call('HSET', key, 'status', 'pending', 'run_at', due, 'updated_at', now,
        'snoozes', snoozes + 1, 'parked', 'snoozed')
      redis.call('HINCRBY', key, 'attempt', -1)
      redis.call('ZADD', qk(P, q, 'scheduled'), due, id)
      out = {3, due}
    else
      mode = 'retry'
      A[3] = 'snoozed ' .. snoozes .. ' times (MAX_SNOOZES): counted as a failed attempt; ' ..
        A[3]
    end
  end
  if not out then
    outcome = 'fail'
    local attempt = tonumber(redis.call('HGET', key, 'attempt') or '1')
    local max = tonumber(redis.call('HGET', key, 'max_attempts') or '1')
    push_error(key, A[3], now)
    if mode ~= 'permanent' and attempt < max then
      local due = now + tonumber(A[4]) * 1000
      redis.call('HSET', key, 'status', 'pending', 'run_at', due)
      redis.call('ZADD', qk(P, q, 'scheduled'), due, id)
      bump(c.counts, K[3], 'retried', 1)
      bump(c.counts, qk(P, q, 'meta'), 'retried', 1)
      out = {1, due}
    else
      out = {2, now}
    end
  end
  if types_active(P) then
    -- A job of the type set aside for its limit may become ready (see forget_meta).
    forget_meta(c)
  end
  local changed = type_after(P, t, id, outcome, now, d)
  out[3] = changed or ''
  if out[1] == 2 then
    local evicted = bury(K[2], K[3], P, id, now, tonumber(A[6]))
    out[4] = #evicted
    extend(out, evicted)
    if has_ties(f) then
      forget_meta(c)
      finish().settle(P, key, id, false, now, ev, f)
    end
  else
    out[4] = 0
  end
  local job
  if A[7] == '1' and g == '' and not types_active(P) then
    job = next_fast(P, K[1], c, sel, q, t, ev)
  end
  -- The events, after next_fast (which learns in passing whether any subscription exists). A
  -- cancelled job's is written by end_cancelled; a snooze is no failure.
  if out[1] == 1 and wants(P, 'job.failed', q, t) then
    events().job(P, 'job.failed', key, id, q, t, now, {e = A[3], d = string.format('%.0f', out[2])})
  elseif out[1] == 2 and wants(P, 'job.dead', q, t) then
    events().job(P, 'job.dead', key, id, q, t, now, {e = A[3]})
  end
  if changed == 'opened' and wants(P, 'breaker.opened', q, t) and not redis.call('HGET', key, 'sub')
  then
    events().emit(P, {k = 'breaker.opened', t = t, q = q, j = id,
      u = redis.call('HGET', tk(P, t), 'b_until')}, now)
  end
  out[#out + 1] = #ev / 5
  extend(out, ev)
  if job then
    return extend(out, job)
  end
  -- Otherwise no next job here (the worker asks its fetcher): the counts move and waiting
  -- processes are told, as in complete.lua.
  bump(d, K[3], 'running', -1)
  flush(d)
  wake(P)
  return out
end
