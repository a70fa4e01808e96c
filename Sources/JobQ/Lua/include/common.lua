--[[
  Shared helpers, spliced into a script by its include line (`--@include` + name).
  Locals only (Redis forbids globals). Codes returned to Swift (ScriptCode.swift mirrors them):
    -1 NOT_FOUND      no such job
    -2 LEASE_LOST     the job is not active with that lease token
    -3 PAUSED         the queue is paused
    -4 IS_ACTIVE      refused: the job is running
    -5 NOT_PAUSED     refused: pause the queue first (or force)
    -6 HAS_ACTIVE     refused: jobs are running (or force)
    -7 WRONG_STATE    refused: the job is not in a state this call accepts
    -8 OK_ALREADY     a repeat of a call that was already applied
    -9 TOO_LARGE      a value over its size limit
]]
local NOT_FOUND, LEASE_LOST, PAUSED, IS_ACTIVE = -1, -2, -3, -4
local NOT_PAUSED, HAS_ACTIVE, WRONG_STATE, OK_ALREADY, TOO_LARGE = -5, -6, -7, -8, -9

-- Waiting jobs of priority 0 (the usual case) sit in the `wait` LIST: LPUSH in, RPOP out, FIFO
-- at O(1). Other priorities sit in the `prioritized` ZSET, score = (1000 - priority) * BAND +
-- sequence: a larger priority sorts first, the queue's sequence keeps FIFO inside one priority.
-- Scores below ZERO_SCORE are priorities above 0 (they run before the list); the rest after it.
local BAND = 2199023255552 -- 2^41
local ZERO_SCORE = 1000 * BAND

local function nowMs()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function int(n)
  return string.format('%.0f', n)
end

-- Appends one event; `fields` is a flat list of name, value pairs (the type comes first).
local function emit(eventsKey, maxLen, eventType, jobId, fields)
  local args = {'XADD', eventsKey, 'MAXLEN', '~', maxLen, '*', 'ev', eventType, 'id', jobId}
  if fields then
    for i = 1, #fields do args[#args + 1] = fields[i] end
  end
  return redis.call(unpack(args))
end

-- The first `limit` bytes of a value, for event payloads.
local function excerpt(value, limit)
  if not value then return '' end
  if #value > limit then return string.sub(value, 1, limit) end
  return value
end

-- Puts a job among the waiting ones and arms the marker when an idle fetcher may need waking:
-- always for a prioritized job; for the list only when it was empty (while it is not, the
-- marker is set or the fetcher that popped it is about to take, and take re-arms it).
local function enqueueWaiting(waitKey, prioritizedKey, seqKey, markerKey, jobId, priority)
  if priority == 0 then
    if redis.call('LPUSH', waitKey, jobId) == 1 then redis.call('ZADD', markerKey, 0, '0') end
  else
    local seq = redis.call('INCR', seqKey)
    redis.call('ZADD', prioritizedKey, int((1000 - priority) * BAND + seq), jobId)
    redis.call('ZADD', markerKey, 0, '0')
  end
end

-- Takes a waiting job out of line (cancel, remove): O(1) for a prioritized job, a scan of the
-- list from its oldest end otherwise.
local function unqueueWaiting(waitKey, prioritizedKey, jobId, priority)
  if priority == 0 then
    redis.call('LREM', waitKey, -1, jobId)
  else
    redis.call('ZREM', prioritizedKey, jobId)
  end
end

-- Deletes finished records beyond `limit` in a finished-state ZSET, oldest first, at most
-- `most` of them (DESIGN §6: lowering a limit never makes one call huge).
local function trimFinished(setKey, limit, jobPrefix, most)
  local excess = redis.call('ZCARD', setKey) - limit
  if excess <= 0 then return 0 end
  if excess > most then excess = most end
  local popped = redis.call('ZPOPMIN', setKey, excess)
  local keys = {}
  for i = 1, #popped, 2 do keys[#keys + 1] = jobPrefix .. popped[i] end
  redis.call('UNLINK', unpack(keys))
  return #keys
end

-- The queue's retention limits: completed, failed, cancelled (DESIGN §6 defaults 10, 5, 10).
local function retention(metaKey)
  local v = redis.call('HMGET', metaKey, 'kc', 'kf', 'kx')
  return tonumber(v[1] or 10), tonumber(v[2] or 5), tonumber(v[3] or 10)
end

-- The queue's settings in one read: paused (bool), then the three retention limits.
local function queueMeta(metaKey)
  local v = redis.call('HMGET', metaKey, 'paused', 'kc', 'kf', 'kx')
  return v[1] == '1', tonumber(v[2] or 10), tonumber(v[3] or 5), tonumber(v[4] or 10)
end

-- Moves delayed jobs due at `now` into `wait`, at most `most`. Returns how many moved and the
-- next due time as an offset from now (-1 when nothing is delayed).
local function promoteDue(delayedKey, waitKey, prioritizedKey, seqKey, markerKey, eventsKey, jobPrefix, maxLen, now, most)
  local first = redis.call('ZRANGE', delayedKey, 0, 0, 'WITHSCORES')
  if not first[2] then return 0, -1 end
  if tonumber(first[2]) > now then return 0, tonumber(first[2]) - now end
  local ids = redis.call('ZRANGEBYSCORE', delayedKey, '-inf', now, 'LIMIT', 0, most)
  for i = 1, #ids do
    local id = ids[i]
    local jobKey = jobPrefix .. id
    local priority = tonumber(redis.call('HGET', jobKey, 'p') or 0)
    redis.call('ZREM', delayedKey, id)
    redis.call('HSET', jobKey, 's', 'waiting')
    redis.call('HDEL', jobKey, 'du')
    enqueueWaiting(waitKey, prioritizedKey, seqKey, markerKey, id, priority)
    emit(eventsKey, maxLen, 'waiting', id, nil)
  end
  local nextDue = -1
  first = redis.call('ZRANGE', delayedKey, 0, 0, 'WITHSCORES')
  if first[2] then
    nextDue = tonumber(first[2]) - now
    if nextDue < 0 then nextDue = 0 end
  end
  return #ids, nextDue
end

-- Reads a flat HGETALL reply into a table.
local function toMap(flat)
  local m = {}
  for i = 1, #flat, 2 do m[flat[i]] = flat[i + 1] end
  return m
end
