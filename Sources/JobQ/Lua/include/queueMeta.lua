--@include record
-- The queue's settings in one read (docs/data-model.md): the paused flag, the retention limits
-- and the flow limits with the groups' defaults (docs/flow-control.md), as a table. A limit that is not set is nil.
local function queueMeta(metaKey)
  local v = redis.call('HMGET', metaKey, META.paused, META.keepCompleted, META.keepFailed, META.keepCancelled,
    META.concurrency, META.rateCount, META.rateWindow, META.throttledUntil, META.groupConcurrency,
    META.groupRateCount, META.groupRateWindow)
  return {
    paused = v[1] == FLAG, keepCompleted = tonumber(v[2] or 10), keepFailed = tonumber(v[3] or 5),
    keepCancelled = tonumber(v[4] or 10), concurrency = tonumber(v[5]), rateCount = tonumber(v[6]),
    rateWindow = tonumber(v[7]), throttledUntil = tonumber(v[8]), groupConcurrency = tonumber(v[9]),
    groupRateCount = tonumber(v[10]), groupRateWindow = tonumber(v[11]),
  }
end
