-- What the dispatcher needs of one partition's outbox in one step: the events dropped since the
-- last look (P:events:dropped, taken), the subscriptions' version, the oldest events, and the
-- subscriptions (when there are any).
-- KEYS: the outbox, the subscriptions hash, the index, the dropped count, the version
-- ARGV: most events to read
-- Returns: {dropped, version ('0' = none), n, n events..., name, stored JSON, ...}
local dropped = redis.call('GET', KEYS[4])
if dropped then
  redis.call('DEL', KEYS[4])
end
local evs = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
local out = extend({dropped or '0', redis.call('GET', KEYS[5]) or '0', #evs}, evs)
if redis.call('EXISTS', KEYS[3]) == 1 then
  extend(out, redis.call('HGETALL', KEYS[2]))
end
return out
