--@include record
-- Appends one event; `fields` is a flat list of name, value pairs (EV names), or nil.
local function emit(eventsKey, maxLen, eventType, jobId, fields)
  local args = {'XADD', eventsKey, 'MAXLEN', '~', maxLen, '*', EV.kind, eventType, EV.job, jobId}
  if fields then
    for i = 1, #fields do args[#args + 1] = fields[i] end
  end
  return redis.call(unpack(args))
end
