-- GET /queues and GET /queues/{q}: each queue's counts, flags, limits and latency, in one step.
-- Latency is the age of the oldest ready job among the heads of the queue's lists: the jobs
-- without a group and the first 20 groups in its rotation (a bounded look, never a scan).
-- ARGV: key prefix, a queue name or '' for every queue
-- Returns: {now µs, queue...}, per queue: name, pending, scheduled, running, failed, paused,
--          oldest ready since µs (-1 = none ready), then the limit fields conc, rate_n, rate_ms,
--          gconc, grate_n, grate_ms ('' = not set), waiting (jobs waiting for their parents)
local P = ARGV[1]
local now = now_us()
local names
if ARGV[2] == '' then
  names = redis.call('SMEMBERS', P .. ':queues')
  table.sort(names)
elseif redis.call('SISMEMBER', P .. ':queues', ARGV[2]) == 1 then
  names = {ARGV[2]}
else
  return {now}
end
local out = {now}
for _, q in ipairs(names) do
  local m = redis.call('HMGET', qk(P, q, 'meta'), 'pending', 'running', 'failed', 'paused',
    'conc', 'rate_n', 'rate_ms', 'gconc', 'grate_n', 'grate_ms', 'waiting')
  local oldest = -1
  local groups = redis.call('LRANGE', qk(P, q, 'groups'), 0, 19)
  for _, g in ipairs(groups) do
    for _, lv in ipairs(LEVELS) do
      local id = redis.call('LINDEX', ready_key(P, q, g, lv), 0)
      if id then
        -- Ready since its last change, or its creation when it has none (a new job).
        local t = redis.call('HMGET', P .. ':job:' .. id, 'updated_at', 'created_at')
        local since = tonumber(t[1] or t[2] or '-1')
        if since >= 0 and (oldest < 0 or since < oldest) then
          oldest = since
        end
      end
    end
  end
  extend(out, {q, tonumber(m[1] or '0'), redis.call('ZCARD', qk(P, q, 'scheduled')),
    tonumber(m[2] or '0'), tonumber(m[3] or '0'), m[4] == '1' and 1 or 0, oldest,
    m[5] or '', m[6] or '', m[7] or '', m[8] or '', m[9] or '', m[10] or '',
    tonumber(m[11] or '0')})
end
return out
