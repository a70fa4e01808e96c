-- The sliding log of a rate limit (the queue's or a group's): how long until a start is
-- allowed, or nil now. The log holds the start times of the last window, so every window of
-- that length, wherever it begins, holds at most `count` starts. Entries older than the window
-- only matter once the log holds `count`: below that a start is allowed whatever their age. So
-- the log is trimmed then (exact), and every 16th start otherwise, which keeps each trim small
-- and the log at most `count` long. The take records its start. Needs nothing.
local function rateWait(rateKey, count, window, now)
  local used = redis.call('ZCARD', rateKey)
  if used >= count or used % 16 == 0 then
    redis.call('ZREMRANGEBYSCORE', rateKey, '-inf', now - window)
    used = redis.call('ZCARD', rateKey)
  end
  if used < count then return nil end
  -- After a lowered limit the log can hold more than count: wait for enough to leave.
  local edge = redis.call('ZRANGE', rateKey, used - count, used - count, 'WITHSCORES')
  local wait = tonumber(edge[2]) + window - now
  if wait < 1 then wait = 1 end
  return wait
end
