-- complete.lua's step as a function of its keys K and arguments A (see there), the selection
-- for the next claim and what the call's acknowledgements share (c, see new_acks in fast.lua),
-- so that ack.lua takes it for each job of a group commit.
local function complete_job(K, A, sel, c)
  local P, id = A[1], A[2]
  local f = release(K[1], K[4], id, A[7])
  if not f then
    return {0}
  end
  local now = c.now
  local ev = {}
  if A[3] ~= '' then
    redis.call('HSET', K[4], 'status', 'completed', 'completed_at', now, 'updated_at', now,
      'result', A[3])
  else
    redis.call('HSET', K[4], 'status', 'completed', 'completed_at', now, 'updated_at', now)
  end
  redis.call('EXPIRE', K[4], A[4])
  -- Into the list of recent completions (keeping A[5]), and the counts, the queue's for
  -- GET /stats/history: once for the call's acknowledgements, at its end.
  c.keep = tonumber(A[5])
  c.done[#c.done + 1] = id
  bump(c.counts, K[3], 'completed', 1)
  bump(c.counts, qk(P, A[8], 'meta'), 'completed', 1)
  if has_ties(f) then
    forget_meta(c)
    finish().settle(P, K[4], id, true, now, ev, f)
  end
  local job
  if A[6] == '1' and A[10] == '' then
    job = next_fast(P, K[1], c, sel, A[8], A[9], ev)
  end
  -- After next_fast, which learns in passing whether any subscription exists.
  if wants(P, 'job.completed', A[8], A[9]) then
    events().job(P, 'job.completed', K[4], id, A[8], A[9], now, {r = A[3] ~= '' and A[3] or nil})
  end
  if job then
    return extend(extend({1, '', #ev / 5}, ev), job)
  end
  -- Otherwise no next job here: the worker asks its fetcher, whose claim takes every rule into
  -- account. The finished job leaves the running counts, and waiting processes are told (it
  -- may have held a slot one of them waits for).
  forget_meta(c)
  local d = {}
  bump_running(d, P, A[8], A[9], A[10], -1)
  bump(d, K[3], 'running', -1)
  local changed = type_after(P, A[9], id, 'ok', now, d)
  flush(d)
  wake(P)
  return extend({1, changed or '', #ev / 5}, ev)
end
