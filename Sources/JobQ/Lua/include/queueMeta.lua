--@include record
-- The queue's settings in one read: paused (bool), then the three retention limits.
local function queueMeta(metaKey)
  local v = redis.call('HMGET', metaKey, META.paused, META.keepCompleted, META.keepFailed, META.keepCancelled)
  return v[1] == FLAG, tonumber(v[2] or 10), tonumber(v[3] or 5), tonumber(v[4] or 10)
end
