--[[
  Changes a queue's flow limits (docs/flow-control.md) in one step: optionally clears them all,
  then sets or clears each field given. Every waiting fetcher is woken (the marker is armed),
  and every group a limit held is back in the rotation (the next takes check each again), so a
  raised or removed limit takes effect at the next take.

  KEYS[1] jobq:{<q>}:meta      HASH    fields cc, rn, rw, tu, mw; the groups' defaults gc, gn, gw
  KEYS[2] jobq:{<q>}:marker    ZSET    wake-up marker
  KEYS[3] jobq:{<q>}:events    STREAM
  KEYS[4] jobq:{<q>}:rate      LIST    the rate limit's log: deleted with the rate limit
  KEYS[5] jobq:{<q>}:seq       STRING  sequence counter (the groups' turns)
  KEYS[6] jobq:{<q>}:g:        prefix of the groups' keys (include/groups.lua)
  Derived keys: the group keys of each group a limit held.

  ARGV[1] events stream cap
  ARGV[2] "1": clear every flow limit (and a throttle) first
  ARGV[3...] field, value pairs: a field of cc, rn, rw, tu, mw, gc, gn, gw; value "" clears it

  Returns {1}.
  Events: "limits" (id "").
]]
--@include record
--@include emit
--@include groups
local metaKey, markerKey, eventsKey, rateKey, seqKey, groupPrefix = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local allowed = {[META.concurrency] = true, [META.rateCount] = true, [META.rateWindow] = true,
                 [META.throttledUntil] = true, [META.maxWaiting] = true, [META.groupConcurrency] = true,
                 [META.groupRateCount] = true, [META.groupRateWindow] = true}
if ARGV[2] == '1' then
  redis.call('HDEL', metaKey, META.concurrency, META.rateCount, META.rateWindow, META.throttledUntil, META.maxWaiting,
    META.groupConcurrency, META.groupRateCount, META.groupRateWindow)
end
for i = 3, #ARGV - 1, 2 do
  local field, value = ARGV[i], ARGV[i + 1]
  if not allowed[field] then return redis.error_reply('ERR setLimits: ' .. field .. ' is not a flow limit field') end
  if value == '' then redis.call('HDEL', metaKey, field) else redis.call('HSET', metaKey, field, value) end
end
-- Without a rate limit the log has no use (and no expiry): it goes.
if redis.call('HEXISTS', metaKey, META.rateCount) == 0 then redis.call('DEL', rateKey) end
groupsRecheck(groupPrefix, seqKey)
redis.call('ZADD', markerKey, 0, '0')
emit(eventsKey, ARGV[1], 'limits', '', nil)
return {1}
