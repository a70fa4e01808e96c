-- Whether the queue's flow limits let a take start a job now (docs/flow-control.md). Returns
-- nil when none binds; otherwise how long to wait in ms and which limit: a throttle (a handler's
-- RateLimited), the concurrency cap (-1: until a slot frees, which re-arms the marker), or the
-- rate (until the oldest start in the window leaves it). Reads only; the take records its start.
-- The rate is a sliding log: the start times of the last window, so every window of that
-- length, wherever it begins, holds at most rateCount starts.
local function limitWait(meta, activeKey, rateKey, now)
  if meta.throttledUntil and meta.throttledUntil > now then return meta.throttledUntil - now, 'throttled' end
  if meta.concurrency and redis.call('ZCARD', activeKey) >= meta.concurrency then return -1, 'concurrency' end
  if meta.rateCount and meta.rateWindow then
    redis.call('ZREMRANGEBYSCORE', rateKey, '-inf', now - meta.rateWindow)
    local used = redis.call('ZCARD', rateKey)
    if used >= meta.rateCount then
      -- After a lowered limit the log can hold more than rateCount: wait for enough to leave.
      local edge = redis.call('ZRANGE', rateKey, used - meta.rateCount, used - meta.rateCount, 'WITHSCORES')
      local wait = tonumber(edge[2]) + meta.rateWindow - now
      if wait < 1 then wait = 1 end
      return wait, 'rate'
    end
  end
  return nil
end
