-- Selecting jobs by what their records say: prepended to the scripts that walk jobs with a
-- filter (explore: GET /jobs and the selections of POST /jobs/retry and /jobs/delete; cancel by
-- filter), so that a filter means the same everywhere.

-- The value at a dotted path ('user.id', 'items.0.sku': a number indexes an array from 0) of a
-- JSON text, as the text a caller compares with: a string as it is, a number without a fraction
-- when it has none, true, false, null; nil when the path leads nowhere or to an object or array.
local function at_path(json, segs)
  local ok, v = pcall(cjson.decode, json)
  if not ok then
    return nil
  end
  for _, s in ipairs(segs) do
    if type(v) ~= 'table' then
      return nil
    end
    local n = tonumber(s)
    if v[s] ~= nil then
      v = v[s]
    elseif n then
      v = v[n + 1]
    else
      return nil
    end
  end
  if v == cjson.null then
    return 'null'
  elseif type(v) == 'number' and v == math.floor(v) and math.abs(v) < 1e15 then
    return string.format('%d', v)
  elseif type(v) == 'table' then
    return nil
  end
  return tostring(v)
end

-- A filter: statuses (comma-separated, '' = any; 'scheduled' is a pending job with a run_at,
-- 'pending' one without), queue, type and group ('' = any), needle (lower case: a substring of
-- the payload, result or last error, '' = none), path (dotted, '' = none) and the value the
-- payload must have there (the needle is then that value, lower case, to skip the JSON decoding
-- of most records), upto (µs: created at or before; '' = no bound). Returns a function of a
-- record key that answers the job's status (as above) when it passes, else nil. A missing
-- record (expired, deleted) never passes.
local function job_filter(statuses, queue, kind, group, needle, path, value, upto)
  local want = nil
  if statuses ~= '' then
    want = {}
    for s in string.gmatch(statuses, '[^,]+') do
      want[s] = true
    end
  end
  local segs = nil
  if path ~= '' then
    segs = {}
    for s in string.gmatch(path, '[^.]+') do
      segs[#segs + 1] = s
    end
  end
  upto = tonumber(upto)
  return function(key)
    local r = redis.call('HMGET', key, 'status', 'queue', 'type', 'group', 'run_at', 'created_at')
    local st = r[1]
    if not st then
      return nil
    end
    if st == 'pending' and r[5] then
      st = 'scheduled'
    end
    if (want and not want[st]) or (queue ~= '' and (r[2] or 'default') ~= queue)
      or (kind ~= '' and r[3] ~= kind) or (group ~= '' and r[4] ~= group)
      or (upto and tonumber(r[6]) > upto)
    then
      return nil
    end
    if segs then
      local payload = redis.call('HGET', key, 'payload')
      if not payload or (needle ~= '' and not string.find(string.lower(payload), needle, 1, true))
        or at_path(payload, segs) ~= value
      then
        return nil
      end
    elseif needle ~= '' then
      local t = redis.call('HMGET', key, 'payload', 'result', 'error')
      if not ((t[1] and string.find(string.lower(t[1]), needle, 1, true))
        or (t[2] and string.find(string.lower(t[2]), needle, 1, true))
        or (t[3] and string.find(string.lower(t[3]), needle, 1, true)))
      then
        return nil
      end
    end
    return st
  end
end
