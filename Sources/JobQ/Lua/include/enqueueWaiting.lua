--@include priorityScore
--@include groups
-- Puts a job among the waiting ones and arms the marker when an idle fetcher may need waking:
-- always for a prioritized job; for the list only when it was empty (while it is not, the
-- marker is set or the fetcher that popped it is about to take, and take re-arms it). A job
-- of a group (`group` not nil or empty) goes into its group's line (groups.lua).
local function enqueueWaiting(waitKey, prioritizedKey, seqKey, markerKey, jobId, priority, groupPrefix, group)
  if group and group ~= '' then
    enqueueGroup(groupPrefix, seqKey, markerKey, group, jobId, priorityScore(priority, redis.call('INCR', seqKey)))
  elseif priority == 0 then
    if redis.call('LPUSH', waitKey, jobId) == 1 then redis.call('ZADD', markerKey, 0, '0') end
  else
    local seq = redis.call('INCR', seqKey)
    redis.call('ZADD', prioritizedKey, priorityScore(priority, seq), jobId)
    redis.call('ZADD', markerKey, 0, '0')
  end
end
