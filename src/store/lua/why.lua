-- Why a pending job is not running ("waiting" in GET /jobs/{id}), from what Redis holds now,
-- in O(1) reads: never a scan of a queue.
-- ARGV: key prefix, job id
-- Returns: {} when the job is not pending, else {reason, detail, until µs or ''}
local P, id = ARGV[1], ARGV[2]
local key = P .. ':job:' .. id
local r = redis.call('HMGET', key, 'status', 'queue', 'type', 'group', 'run_at', 'attempt',
  'parked', 'snoozes')
if r[1] ~= 'pending' then
  return {}
end
local now = now_us()
local q, t, g = r[2] or 'default', r[3] or '', r[4] or ''
if r[5] then
  if r[7] == 'rate_limit' then
    return {'rate_limit', 'type ' .. t .. ' is at its rate limit: this job waits for its next free start', r[5]}
  elseif r[7] == 'snoozed' then
    return {'scheduled', 'snoozed by its handler (snoozes so far: ' .. (r[8] or '1') .. ')', r[5]}
  elseif tonumber(r[6] or '0') > 0 then
    return {'backoff', 'retry ' .. r[6] .. ' after a failed attempt', r[5]}
  end
  return {'scheduled', 'delayed until its run_at', r[5]}
end
-- No process to run it outranks every other reason: nothing else can change that.
if redis.call('EXISTS', P .. ':served-all', qk(P, q, 'served')) == 0 then
  return {'no_worker', 'no live worker process serves queue ' .. q .. ' (see QUEUES)', ''}
end
local ts = type_state(P, t, {})
local m = redis.call('HMGET', qk(P, q, 'meta'), 'paused', 'conc', 'running', 'rate_n',
  'rate_ms', 'tat', 'gconc', 'grate_n', 'grate_ms', 'pending')
if m[1] == '1' then
  return {'queue_paused', 'queue ' .. q .. ' is paused: POST /queues/' .. q .. '/resume', ''}
end
if ts.paused then
  return {'type_paused', 'type ' .. t .. ' is paused: POST /types/' .. t .. '/resume', ''}
end
if ts.b_state == 'open' and now < ts.b_until then
  return {'circuit_open', 'the circuit breaker of type ' .. t .. ' is open after repeated failures', ts.b_until}
end
if ts.b_state ~= 'closed' and ts.b_probe then
  return {'circuit_open', 'the circuit breaker of type ' .. t .. ' is half open: probe job ' .. ts.b_probe .. ' is running', ''}
end
if m[2] and tonumber(m[3] or '0') >= tonumber(m[2]) then
  return {'concurrency_limit', 'queue ' .. q .. ': ' .. (m[3] or '0') .. '/' .. m[2] .. ' running', ''}
end
if ts.conc and ts.running >= ts.conc then
  return {'concurrency_limit', 'type ' .. t .. ': ' .. ts.running .. '/' .. ts.conc .. ' running', ''}
end
if m[4] and tonumber(m[6] or '0') > now then
  return {'rate_limit', 'queue ' .. q .. ': ' .. m[4] .. ' per ' .. (tonumber(m[5]) / 1000) .. ' s', m[6]}
end
if g ~= '' then
  local st = redis.call('HMGET', qk(P, q, 'gstate'), 'run:' .. g, 'tat:' .. g)
  if m[7] and tonumber(st[1] or '0') >= tonumber(m[7]) then
    return {'group_limit', 'group ' .. g .. ': ' .. (st[1] or '0') .. '/' .. m[7] .. ' running', ''}
  end
  if m[8] and tonumber(st[2] or '0') > now then
    return {'group_limit', 'group ' .. g .. ': ' .. m[8] .. ' per ' .. (tonumber(m[9]) / 1000) .. ' s', st[2]}
  end
end
if ts.rate_n and tonumber(ts.tat or '0') > now then
  return {'rate_limit', 'type ' .. t .. ': ' .. ts.rate_n .. ' per ' .. (tonumber(ts.rate_ms) / 1000) .. ' s', ts.tat}
end
return {'queued', (m[10] or '0') .. ' jobs ready in queue ' .. q, ''}
