-- The event subscriptions of one partition (every partition holds them all, so each event step
-- reads its own): create or replace one (in partition 0, which stamps its times), write one as
-- partition 0 stored it (the other partitions), delete one, or replace them all with partition
-- 0's (the dispatcher's repair of a partition that missed a change). Then, in the same step, the
-- index the event steps read (events.lua) is rebuilt from them: a digest of the subscriptions
-- (16 hex digits), then `,kind|queue|type` for each event of each subscription (`*` for a
-- filter left open), sorted, ending with `,`; no index at all when there is no subscription.
-- KEYS: the subscriptions hash, the index
-- ARGV: key prefix, mode, then for 'put': name, the subscription as JSON (without its times);
--       'set': name, stored JSON; 'delete': name; 'replace': name, stored JSON, name, ...
-- Returns: {'created' | 'updated', stored JSON} (put), {'set'}, {'deleted' | 'missing'}
--          (delete), {'replaced'}
local h, ix, mode = KEYS[1], KEYS[2], ARGV[2]
local out
if mode == 'put' then
  local t = redis.call('TIME')
  local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local doc = cjson.decode(ARGV[4])
  local old = redis.call('HGET', h, ARGV[3])
  doc.created_at = old and cjson.decode(old).created_at or ms
  doc.updated_at = ms
  local v = cjson.encode(doc)
  redis.call('HSET', h, ARGV[3], v)
  out = {old and 'updated' or 'created', v}
elseif mode == 'set' then
  redis.call('HSET', h, ARGV[3], ARGV[4])
  out = {'set'}
elseif mode == 'delete' then
  out = {redis.call('HDEL', h, ARGV[3]) == 1 and 'deleted' or 'missing'}
else
  redis.call('DEL', h)
  for i = 3, #ARGV, 2 do
    redis.call('HSET', h, ARGV[i], ARGV[i + 1])
  end
  out = {'replaced'}
end
local all = redis.call('HGETALL', h)
if #all == 0 then
  redis.call('DEL', ix)
  return out
end
local names, values, seen, entries = {}, {}, {}, {}
for i = 1, #all, 2 do
  names[#names + 1] = all[i]
  values[all[i]] = all[i + 1]
  local doc = cjson.decode(all[i + 1])
  local f = type(doc.filter) == 'table' and doc.filter or {}
  local q = type(f.queue) == 'string' and f.queue or '*'
  local ty = type(f.type) == 'string' and f.type or '*'
  for _, kind in ipairs(doc.events or {}) do
    local e = kind .. '|' .. q .. '|' .. ty
    if not seen[e] then
      seen[e] = true
      entries[#entries + 1] = e
    end
  end
end
table.sort(names)
table.sort(entries)
local parts = {}
for _, n in ipairs(names) do
  parts[#parts + 1] = n .. '\n' .. values[n]
end
local digest = string.sub(redis.sha1hex(table.concat(parts, '\n')), 1, 16)
redis.call('SET', ix, digest .. ',' .. table.concat(entries, ',') .. ',')
return out
