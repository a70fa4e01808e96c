--[[
  Counts the jobs of a queue per state, and reads its settings and flow limits, in one
  consistent reading.

  KEYS[1] jobq:{<q>}:wait        LIST
  KEYS[2] jobq:{<q>}:prioritized ZSET
  KEYS[3] jobq:{<q>}:delayed     ZSET
  KEYS[4] jobq:{<q>}:active      ZSET
  KEYS[5] jobq:{<q>}:completed   ZSET
  KEYS[6] jobq:{<q>}:failed      ZSET
  KEYS[7] jobq:{<q>}:cancelled   ZSET
  KEYS[8] jobq:{<q>}:meta        HASH    paused flag, flow limits
  KEYS[9] jobq:{<q>}:rate        LIST    the rate limit's log
  KEYS[10] jobq:{<q>}:g:         prefix of the groups' keys (include/groups.lua)
  Derived keys: the waiting line of each group a limit holds.

  Returns {waiting, delayed, active, completed, failed, cancelled, paused (0/1),
           concurrency, rateCount, rateWindow, throttledUntil, maxWaiting,
           startsInWindow, limitedBy, limitWaitMs,
           groupConcurrency, groupRateCount, groupRateWindow, groups, groupsReady, groupsHeld,
           heldInGroups}
  where a limit not set is -1, throttledUntil is -1 unless it lies ahead, startsInWindow counts
  the rate log's starts in the last window, limitedBy is the limit refusing a start now (""
  when none binds or nothing waits; "group" when every group with waiting jobs is held) and
  limitWaitMs how long it will (-1: until a slot frees). waiting includes the groups' jobs;
  groups counts the known groups, groupsReady those in the rotation, groupsHeld those with
  waiting jobs that their limits hold, heldInGroups the jobs waiting in those (summed over at
  most 10,000 held groups).
  Flags: no-writes. It only reads (TIME included), so it may run on a replica and under OOM.
  Events: none.
]]
--@include record
--@include nowMs
--@include groups
--@include rateUsed
local groupPrefix = KEYS[10]
local ungrouped = redis.call('LLEN', KEYS[1]) + redis.call('ZCARD', KEYS[2])
local waiting = ungrouped + tonumber(redis.call('GET', groupPrefix .. 'waiting') or 0)
local counts = {waiting}
for i = 3, 7 do counts[#counts + 1] = redis.call('ZCARD', KEYS[i]) end
local v = redis.call('HMGET', KEYS[8], META.paused, META.concurrency, META.rateCount, META.rateWindow, META.throttledUntil, META.maxWaiting,
  META.groupConcurrency, META.groupRateCount, META.groupRateWindow)
counts[7] = v[1] == FLAG and 1 or 0
local now = nowMs()
local concurrency, rateCount, rateWindow = tonumber(v[2]), tonumber(v[3]), tonumber(v[4])
local throttledUntil = tonumber(v[5])
if throttledUntil and throttledUntil <= now then throttledUntil = nil end
local used, firstInWindow = 0, 0
if rateCount and rateWindow then used, firstInWindow = rateUsed(KEYS[9], rateWindow, now) end
local limitedBy, waitMs = '', 0
if waiting > 0 then
  if throttledUntil then
    limitedBy, waitMs = 'throttled', throttledUntil - now
  elseif concurrency and counts[3] >= concurrency then
    limitedBy, waitMs = 'concurrency', -1
  elseif rateCount and rateWindow and used >= rateCount then
    local edge = redis.call('LINDEX', KEYS[9], firstInWindow + used - rateCount)
    limitedBy, waitMs = 'rate', math.max(1, tonumber(edge or now) + rateWindow - now)
  end
end
local groupsReady = redis.call('ZCARD', groupPrefix .. 'ready')
local groupsHeld, heldInGroups = 0, 0
local held = redis.call('ZRANGE', groupPrefix .. 'later', 0, 9999)
for _, g in ipairs(redis.call('SRANDMEMBER', groupPrefix .. 'blocked', 10000 - #held)) do held[#held + 1] = g end
for i = 1, #held do
  local n = redis.call('ZCARD', groupKey(groupPrefix, GROUP_WAIT, held[i]))
  if n > 0 then groupsHeld, heldInGroups = groupsHeld + 1, heldInGroups + n end
end
if limitedBy == '' and ungrouped == 0 and waiting > 0 and groupsReady == 0 then
  local first = redis.call('ZRANGE', groupPrefix .. 'later', 0, 0, 'WITHSCORES')
  limitedBy, waitMs = 'group', first[2] and math.max(1, tonumber(first[2]) - now) or -1
end
counts[8] = concurrency or -1
counts[9] = rateCount or -1
counts[10] = rateWindow or -1
counts[11] = throttledUntil or -1
counts[12] = tonumber(v[6]) or -1
counts[13] = used
counts[14] = limitedBy
counts[15] = waitMs
counts[16] = tonumber(v[7]) or -1
counts[17] = tonumber(v[8]) or -1
counts[18] = tonumber(v[9]) or -1
counts[19] = redis.call('SCARD', groupPrefix .. 'known')
counts[20] = groupsReady
counts[21] = groupsHeld
counts[22] = heldInGroups
return counts
