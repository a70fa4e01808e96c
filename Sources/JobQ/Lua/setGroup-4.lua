--[[
  Changes one group's settings (docs/flow-control.md): pauses or resumes it, sets or clears
  its own limits (overrides of the queue's group defaults) or its throttle. The group moves
  into or out of the rotation at once, and idle fetchers are woken, so the change takes effect
  at the next take.

  KEYS[1] jobq:{<q>}:g:        prefix of the groups' keys (include/groups.lua)
  KEYS[2] jobq:{<q>}:seq       STRING  sequence counter (the groups' turns)
  KEYS[3] jobq:{<q>}:marker    ZSET    wake-up marker
  KEYS[4] jobq:{<q>}:events    STREAM
  Derived keys: the group keys of ARGV[2].

  ARGV[1] events stream cap
  ARGV[2] the group
  ARGV[3] "1": clear the group's limits and throttle first (its paused flag stays)
  ARGV[4...] field, value pairs: a field of paused, cc, rn, rw, tu; value "" clears it; cc or
           rn -1 = no limit of that kind for this group, whatever the default

  Returns {1, wasPaused (0/1), isPaused (0/1)}.
  Events: "limits" with the group (field g).
]]
--@include record
--@include emit
--@include groups
local groupPrefix, seqKey, markerKey, eventsKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local group = ARGV[2]
local metaKey = groupKey(groupPrefix, GROUP_SETTINGS, group)
local allowed = {[META.paused] = true, [META.concurrency] = true, [META.rateCount] = true, [META.rateWindow] = true,
                 [META.throttledUntil] = true}
local wasPaused = redis.call('HGET', metaKey, META.paused) == FLAG
if ARGV[3] == '1' then
  redis.call('HDEL', metaKey, META.concurrency, META.rateCount, META.rateWindow, META.throttledUntil)
end
for i = 4, #ARGV - 1, 2 do
  local field, value = ARGV[i], ARGV[i + 1]
  if not allowed[field] then return redis.error_reply('ERR setGroup: ' .. field .. ' is not a group setting') end
  if value == '' then redis.call('HDEL', metaKey, field) else redis.call('HSET', metaKey, field, value) end
end
local isPaused = redis.call('HGET', metaKey, META.paused) == FLAG
if redis.call('EXISTS', metaKey) == 1 then redis.call('SADD', groupPrefix .. 'known', group) end
redis.call('ZREM', groupPrefix .. 'later', group)
if isPaused then
  redis.call('ZREM', groupPrefix .. 'ready', group)
  redis.call('SADD', groupPrefix .. 'blocked', group)
else
  redis.call('SREM', groupPrefix .. 'blocked', group)
  -- Back in the rotation; the next take checks its limits again.
  if redis.call('ZCARD', groupKey(groupPrefix, GROUP_WAIT, group)) > 0 then groupWake(groupPrefix, seqKey, group) end
  redis.call('ZADD', markerKey, 0, '0')
end
groupForget(groupPrefix, group)
emit(eventsKey, ARGV[1], 'limits', '', {EV.group, group})
return {1, wasPaused and 1 or 0, isPaused and 1 or 0}
