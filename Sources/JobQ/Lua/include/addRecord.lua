--@include record
--@include emit
--@include enqueueWaiting
--@include groups
-- Writes one new job whole or not at all: its record (`fields`, name, value pairs, plus state,
-- creation time and due time), its place (delayed when `due` is later than now, else among the
-- waiting, in its group's line when it has a group) and one event (`eventType`, with
-- `eventFields`). `q` holds the queue's keys: wait, prioritized, delayed, marker, events, seq,
-- groupPrefix, and maxLen. `now` may be nil: the event's stream id then gives the Redis clock
-- (no extra TIME call), and `delay` (ms, or 0) counts from it.
-- Returns true, state — or false, the error, with whatever this call wrote undone (a key of
-- another type under the queue's prefix, or a full Redis, stopped a write partway).
local function addRecord(q, jobKey, id, fields, due, delay, priority, group, now, eventType, eventFields)
  local state = 'waiting'
  if due or delay > 0 then state = 'delayed' end
  local eventId
  local ok, failure = pcall(function()
    local kind = eventType or (state == 'waiting' and 'added' or 'delayed')
    local extra = {}
    for i = 1, #eventFields do extra[i] = eventFields[i] end
    if eventType then extra[#extra + 1] = EV.state; extra[#extra + 1] = state end
    eventId = emit(q.events, q.maxLen, kind, id, extra)
    if not now then now = tonumber(string.match(eventId, '^(%d+)')) end
    if not due and delay > 0 then due = now + delay end

    local args = {'HSET', jobKey, F.state, state, F.createdAt, now}
    for i = 1, #fields do args[#args + 1] = fields[i] end
    if due then
      args[#args + 1] = F.dueAt
      args[#args + 1] = due
    end
    redis.call(unpack(args))

    if due then
      local first = redis.call('ZRANGE', q.delayed, 0, 0, 'WITHSCORES')
      redis.call('ZADD', q.delayed, due, id)
      -- Due sooner than every other delayed job: wake an idle fetcher so it re-arms its timer.
      if not first[2] or due < tonumber(first[2]) then
        redis.call('ZADD', q.marker, 0, '0')
      end
    else
      enqueueWaiting(q.wait, q.prioritized, q.seq, q.marker, id, priority, q.groupPrefix, group)
    end
  end)
  if ok then return true, state end
  if eventId then
    redis.pcall('XDEL', q.events, eventId)
    if redis.pcall('XLEN', q.events) == 0 then redis.pcall('DEL', q.events) end
  end
  redis.pcall('DEL', jobKey)
  redis.pcall('LREM', q.wait, 1, id)   -- LPUSHed: found at the head
  redis.pcall('ZREM', q.prioritized, id)
  redis.pcall('ZREM', q.delayed, id)
  if group and group ~= '' then
    -- Step by step, each on its own: the key that failed may be one of these.
    local groupPrefix = q.groupPrefix
    local groupWait = groupKey(groupPrefix, GROUP_WAIT, group)
    if redis.pcall('ZREM', groupWait, id) == 1 and redis.pcall('DECR', groupPrefix .. 'waiting') == 0 then
      redis.pcall('DEL', groupPrefix .. 'waiting')
    end
    if redis.pcall('ZCARD', groupWait) == 0 then
      redis.pcall('ZREM', groupPrefix .. 'ready', group)
      if redis.pcall('SCARD', groupKey(groupPrefix, GROUP_ACTIVE, group)) == 0
          and redis.pcall('EXISTS', groupKey(groupPrefix, GROUP_SETTINGS, group)) == 0 then
        redis.pcall('SREM', groupPrefix .. 'known', group)
      end
    end
  end
  return false, failure
end
