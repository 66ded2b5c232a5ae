-- What the dispatcher needs of one partition's outbox in one step: the events dropped since the
-- last look (P:events:dropped, taken), the subscriptions' index, the oldest events, and the
-- subscriptions (when there are any).
-- KEYS: the outbox, the subscriptions hash, the index, the dropped count
-- ARGV: most events to read
-- Returns: {dropped, index ('' = none), n, n events..., name, stored JSON, ...}
local dropped = redis.call('GET', KEYS[4])
if dropped then
  redis.call('DEL', KEYS[4])
end
local ix = redis.call('GET', KEYS[3]) or ''
local evs = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
local out = extend({dropped or '0', ix, #evs}, evs)
if ix ~= '' then
  extend(out, redis.call('HGETALL', KEYS[2]))
end
return out
