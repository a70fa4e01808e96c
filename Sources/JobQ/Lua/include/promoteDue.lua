--@include record
--@include emit
--@include enqueueWaiting
-- Moves delayed jobs due at `now` into `wait`, at most `most`. Returns how many moved and the
-- next due time as an offset from now (-1 when nothing is delayed). A job of a group goes into
-- its group's line.
local function promoteDue(delayedKey, waitKey, prioritizedKey, seqKey, markerKey, eventsKey, jobPrefix, maxLen, now, most,
                         groupPrefix)
  local first = redis.call('ZRANGE', delayedKey, 0, 0, 'WITHSCORES')
  if not first[2] then return 0, -1 end
  if tonumber(first[2]) > now then return 0, tonumber(first[2]) - now end
  local ids = redis.call('ZRANGEBYSCORE', delayedKey, '-inf', now, 'LIMIT', 0, most)
  for i = 1, #ids do
    local id = ids[i]
    local jobKey = jobPrefix .. id
    local v = redis.call('HMGET', jobKey, F.priority, F.group)
    redis.call('ZREM', delayedKey, id)
    redis.call('HSET', jobKey, F.state, 'waiting')
    redis.call('HDEL', jobKey, F.dueAt)
    enqueueWaiting(waitKey, prioritizedKey, seqKey, markerKey, id, tonumber(v[1] or 0), groupPrefix, v[2])
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
