-- A workflow as GET /workflows/{id} shows it, read in one step: its record and each node's
-- status, type, parents and result.
-- ARGV: key prefix, workflow id
-- Returns: {} when there is no such workflow; else {created_at µs, left, nodes JSON, then per
--          node (in the order of the nodes JSON's keys as Redis's cjson reads them): ref, id,
--          status ('' when its record has expired), type, parents, error}
local P = ARGV[1]
local w = redis.call('HMGET', P .. ':wf:' .. ARGV[2], 'created_at', 'left', 'nodes')
if not w[3] then
  return {}
end
local out = {w[1], w[2], w[3]}
for ref, id in pairs(cjson.decode(w[3])) do
  local r = redis.call('HMGET', P .. ':job:' .. id, 'status', 'type', 'parents', 'error')
  extend(out, {ref, id, r[1] or '', r[2] or '', r[3] or '', r[4] or ''})
end
return out
