--@include groups
-- Takes a waiting job out of line (cancel, remove): O(1) for a prioritized job, O(log n) for
-- a job of a group, a scan of the list from its oldest end otherwise.
local function unqueueWaiting(waitKey, prioritizedKey, jobId, priority, groupPrefix, group)
  if group and group ~= '' then
    unqueueGroup(groupPrefix, group, jobId)
  elseif priority == 0 then
    redis.call('LREM', waitKey, -1, jobId)
  else
    redis.call('ZREM', prioritizedKey, jobId)
  end
end
