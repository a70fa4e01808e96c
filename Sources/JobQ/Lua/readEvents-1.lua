--[[
  Reads a queue's events after a position, with what a reader needs to tell whether entries it
  never saw were trimmed away (a gap).

  KEYS[1] jobq:{<q>}:events    STREAM  capped event stream

  ARGV[1] read after this stream id ("0-0" = from the start; "$" = only the position)
  ARGV[2] most entries to return

  Returns {entriesAdded, length, firstId, lastGeneratedId, {id, {field, value, ...}, ...}}
  (firstId and lastGeneratedId "0-0" while the stream is empty or missing).
  Events: none.
]]
local info = {0, 0, '0-0', '0-0'}
if redis.call('EXISTS', KEYS[1]) == 1 then
  local flat = redis.call('XINFO', 'STREAM', KEYS[1])
  for i = 1, #flat, 2 do
    local f = flat[i]
    if f == 'entries-added' then info[1] = flat[i + 1]
    elseif f == 'length' then info[2] = flat[i + 1]
    elseif f == 'first-entry' and flat[i + 1] then info[3] = flat[i + 1][1]
    elseif f == 'last-generated-id' then info[4] = flat[i + 1] end
  end
end
local entries = {}
if ARGV[1] ~= '$' then
  local rows = redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', tonumber(ARGV[2]))
  for i = 1, #rows do
    entries[#entries + 1] = rows[i][1]
    entries[#entries + 1] = rows[i][2]
  end
end
info[5] = entries
return info
