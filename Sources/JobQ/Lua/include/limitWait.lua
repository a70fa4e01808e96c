--@include rateWait
-- Whether the queue's flow limits let a take start a job now (docs/flow-control.md). Returns
-- nil when none binds; otherwise how long to wait in ms and which limit: a throttle (a handler's
-- RateLimited), the concurrency cap (-1: until a slot frees, which re-arms the marker), or the
-- rate (until the oldest start in the window leaves it). Third, under a concurrency cap, the
-- active count it read. Trims the rate log when it must; the take records its start.
local function limitWait(meta, activeKey, rateKey, now)
  if meta.throttledUntil and meta.throttledUntil > now then return meta.throttledUntil - now, 'throttled', nil end
  local active
  if meta.concurrency then
    active = redis.call('ZCARD', activeKey)
    if active >= meta.concurrency then return -1, 'concurrency', active end
  end
  if meta.rateCount and meta.rateWindow then
    local wait = rateWait(rateKey, meta.rateCount, meta.rateWindow, now)
    if wait then return wait, 'rate', active end
  end
  return nil, nil, active
end
