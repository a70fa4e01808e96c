-- Whether the queue's flow limits let a take start a job now (docs/flow-control.md). Returns
-- nil when none binds; otherwise how long to wait in ms and which limit: a throttle (a handler's
-- RateLimited), the concurrency cap (-1: until a slot frees, which re-arms the marker), or the
-- rate (until the oldest start in the window leaves it). Third, under a concurrency cap, the
-- active count it read. Trims the rate log when it must; the take records its start.
-- The rate is a sliding log: the start times of the last window, so every window of that
-- length, wherever it begins, holds at most rateCount starts.
local function limitWait(meta, activeKey, rateKey, now)
  if meta.throttledUntil and meta.throttledUntil > now then return meta.throttledUntil - now, 'throttled', nil end
  local active
  if meta.concurrency then
    active = redis.call('ZCARD', activeKey)
    if active >= meta.concurrency then return -1, 'concurrency', active end
  end
  if meta.rateCount and meta.rateWindow then
    -- Entries older than the window only matter once the log holds rateCount: below that the
    -- start is allowed whatever their age. So the log is trimmed then (exact), and every 16th
    -- start otherwise, which keeps each trim small and the log at most rateCount long.
    local used = redis.call('ZCARD', rateKey)
    if used >= meta.rateCount or used % 16 == 0 then
      redis.call('ZREMRANGEBYSCORE', rateKey, '-inf', now - meta.rateWindow)
      used = redis.call('ZCARD', rateKey)
    end
    if used >= meta.rateCount then
      -- After a lowered limit the log can hold more than rateCount: wait for enough to leave.
      local edge = redis.call('ZRANGE', rateKey, used - meta.rateCount, used - meta.rateCount, 'WITHSCORES')
      local wait = tonumber(edge[2]) + meta.rateWindow - now
      if wait < 1 then wait = 1 end
      return wait, 'rate', active
    end
  end
  return nil, nil, active
end
