-- The newest workflows (GET /workflows): P:wfs holds the ids of the newest 10000 by creation
-- (create.lua); those whose record has expired are dropped from it here.
-- ARGV: key prefix, most workflows
-- Returns: {id, created_at µs, nodes, left, ...}, newest first
local P, most = ARGV[1], tonumber(ARGV[2])
local out, gone = {}, {}
local at = 0
while #out < most * 4 do
  local ids = redis.call('ZRANGE', P .. ':wfs', at, at + most - 1, 'REV')
  if #ids == 0 then
    break
  end
  for _, id in ipairs(ids) do
    local w = redis.call('HMGET', P .. ':wf:' .. id, 'created_at', 'left', 'nodes')
    if not w[1] then
      gone[#gone + 1] = id
    elseif #out < most * 4 then
      local n = 0
      for _ in pairs(cjson.decode(w[3])) do
        n = n + 1
      end
      extend(out, {id, w[1], tostring(n), w[2]})
    end
  end
  at = at + #ids
end
if #gone > 0 then
  redis.call('ZREM', P .. ':wfs', unpack(gone))
end
return out
