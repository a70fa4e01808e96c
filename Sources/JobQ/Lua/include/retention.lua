--@include record
-- The queue's retention limits: completed, failed, cancelled (defaults 10, 5, 10).
local function retention(metaKey)
  local v = redis.call('HMGET', metaKey, META.keepCompleted, META.keepFailed, META.keepCancelled)
  return tonumber(v[1] or 10), tonumber(v[2] or 5), tonumber(v[3] or 10)
end
