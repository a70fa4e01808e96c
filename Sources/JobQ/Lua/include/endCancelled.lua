--@include record
--@include emit
--@include excerpt
--@include trimFinished
-- Ends a job as cancelled, the one way every script does it: state, finish time and the reason
-- as its error (plus `fields`, more name, value pairs for the same HSET), kept in the cancelled
-- set under the queue's retention, and one "cancelled" event (attempt when known, who asked,
-- the reason cut to `limit` bytes when a limit is given).
local function endCancelled(jobKey, cancelledKey, eventsKey, jobPrefix, maxLen, keep, id, now, why, by, attempt, limit, fields)
  local args = {'HSET', jobKey, F.state, 'cancelled', F.finishedAt, now, F.errorReason, 'cancelled', F.errorDetails, why or ''}
  for i = 1, #fields do args[#args + 1] = fields[i] end
  redis.call(unpack(args))
  redis.call('ZADD', cancelledKey, now, id)
  local eventFields = {EV.cancelledBy, by or '', EV.reason, excerpt(why, limit)}
  if attempt then eventFields[#eventFields + 1] = EV.attempt; eventFields[#eventFields + 1] = attempt end
  emit(eventsKey, maxLen, 'cancelled', id, eventFields)
  trimFinished(cancelledKey, keep, jobPrefix, 10)
end
