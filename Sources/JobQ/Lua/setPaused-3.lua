--[[
  Pauses or resumes a queue. Paused: adds and promotions go on, running jobs finish, take
  answers PAUSED and the marker is removed so idle fetchers stay asleep. Resume re-arms it.

  KEYS[1] jobq:{<q>}:meta      HASH    field "paused"
  KEYS[2] jobq:{<q>}:marker    ZSET    wake-up marker
  KEYS[3] jobq:{<q>}:events    STREAM

  ARGV[1] "1" pause, "0" resume
  ARGV[2] events stream cap

  Returns {1} changed, {0} it was so already.
  Events: "paused" or "resumed" (id "").
]]
--@include record
--@include emit
local metaKey, markerKey, eventsKey = KEYS[1], KEYS[2], KEYS[3]
if ARGV[1] == '1' then
  if redis.call('HSETNX', metaKey, META.paused, FLAG) == 0 then return {0} end
  redis.call('DEL', markerKey)
  emit(eventsKey, ARGV[2], 'paused', '', nil)
else
  if redis.call('HDEL', metaKey, META.paused) == 0 then return {0} end
  -- Wake a fetcher: waiting jobs, or delayed ones whose timer it must re-arm.
  redis.call('ZADD', markerKey, 0, '0')
  emit(eventsKey, ARGV[2], 'resumed', '', nil)
end
return {1}
