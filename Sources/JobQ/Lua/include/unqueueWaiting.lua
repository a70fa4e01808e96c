-- Takes a waiting job out of line (cancel, remove): O(1) for a prioritized job, a scan of the
-- list from its oldest end otherwise. Needs nothing.
local function unqueueWaiting(waitKey, prioritizedKey, jobId, priority)
  if priority == 0 then
    redis.call('LREM', waitKey, -1, jobId)
  else
    redis.call('ZREM', prioritizedKey, jobId)
  end
end
