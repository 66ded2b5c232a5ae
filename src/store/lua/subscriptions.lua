-- The event subscriptions of one partition (every partition holds them all, so each event step
-- reads its own): in partition 0, create or replace one (`put`, which stamps its times) or
-- delete one; in the others, take partition 0's whole set (`replace`), but only if it is newer
-- than what they hold. Each change in partition 0 moves its version on (µs of its clock, and
-- always up), and a partition holding an older version is given partition 0's set by whoever
-- sees it (a PUT, or the dispatcher: a change it missed while its master was away, a partition
-- added since), so a copy never goes back in time whatever order two writers arrive in.
-- Then, in the same step, the index the event steps read (events.lua) is rebuilt: `,kind|queue|
-- type` for each event of each subscription (`*` for a filter left open), sorted, ending with
-- `,`; no index at all when there is no subscription.
-- KEYS: the subscriptions hash, the index, the version
-- ARGV: key prefix, mode, then for 'put': name, the subscription as JSON (without its times);
--       'delete': name; 'replace': version, then name, stored JSON, name, stored JSON, ...
-- Returns: put: {'created' | 'updated', stored JSON, version, name, stored JSON, ...} (the whole
--          set at that version); delete: {'deleted' | 'missing', '', version, the set};
--          replace: {'replaced' | 'older'}
local h, ix, ver, mode = KEYS[1], KEYS[2], KEYS[3], ARGV[2]
local out

-- The next version: Redis's clock in µs, past the last one even if the clock went back.
local function next_version()
  local t = redis.call('TIME')
  local v = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local last = tonumber(redis.call('GET', ver) or '0')
  if v <= last then
    v = last + 1
  end
  redis.call('SET', ver, string.format('%.0f', v))
  return string.format('%.0f', v)
end

if mode == 'put' then
  local t = redis.call('TIME')
  local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local doc = cjson.decode(ARGV[4])
  local old = redis.call('HGET', h, ARGV[3])
  doc.created_at = old and cjson.decode(old).created_at or ms
  doc.updated_at = ms
  local v = cjson.encode(doc)
  redis.call('HSET', h, ARGV[3], v)
  out = {old and 'updated' or 'created', v, next_version()}
elseif mode == 'delete' then
  local gone = redis.call('HDEL', h, ARGV[3]) == 1
  out = {gone and 'deleted' or 'missing', '', gone and next_version() or
    (redis.call('GET', ver) or '0')}
else
  if tonumber(ARGV[3]) <= tonumber(redis.call('GET', ver) or '0') then
    return {'older'}
  end
  redis.call('SET', ver, ARGV[3])
  redis.call('DEL', h)
  for i = 4, #ARGV, 2 do
    redis.call('HSET', h, ARGV[i], ARGV[i + 1])
  end
  out = {'replaced'}
end
local all = redis.call('HGETALL', h)
if mode ~= 'replace' then
  extend(out, all)
end
if #all == 0 then
  redis.call('DEL', ix)
  return out
end
local seen, entries = {}, {}
for i = 2, #all, 2 do
  local doc = cjson.decode(all[i])
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
table.sort(entries)
redis.call('SET', ix, ',' .. table.concat(entries, ',') .. ',')
return out
