--[[
  Per-group counts and settings, for up to 1,000 groups in one consistent reading.

  KEYS[1] jobq:{<q>}:meta      HASH    the queue's group defaults (gc, gn, gw)
  KEYS[2] jobq:{<q>}:g:        prefix of the groups' keys (include/groups.lua)
  Derived keys: the group keys of each group in ARGV.

  ARGV[1], ARGV[2], ... group names (at most 1,000)

  Returns a flat list, 11 items per group, in order: waiting, active, paused (0/1), concurrency,
          rateCount, rateWindow (the limits in force: the group's own, else the defaults; -1 =
          none), own (1: the group has limits of its own), throttledUntil (-1 unless ahead),
          startsInWindow (its rate log's starts in the last window), status (ready | later |
          blocked | idle: in the rotation, held by time, held for a slot or a resume, nothing
          waiting), freeInMs (later: ms until the take checks it again; else -1).
  Flags: no-writes. It only reads (TIME included), so it may run on a replica and under OOM.
  Events: none.
]]
--@include record
--@include nowMs
--@include queueMeta
--@include groups
--@include rateUsed
if #ARGV > 1000 then return redis.error_reply('countGroups: more than 1000 groups in one call') end
local meta = queueMeta(KEYS[1])
local prefix = KEYS[2]
local now = nowMs()
local out = {}
for i = 1, #ARGV do
  local group = ARGV[i]
  local limits = groupLimits(prefix, group, meta)
  local own = redis.call('HMGET', groupKey(prefix, GROUP_SETTINGS, group), META.concurrency, META.rateCount)
  local used = 0
  if limits.rateCount and limits.rateWindow then
    used = rateUsed(groupKey(prefix, GROUP_RATE, group), limits.rateWindow, now)
  end
  local waiting = redis.call('ZCARD', groupKey(prefix, GROUP_WAIT, group))
  local status, freeIn = 'idle', -1
  local later = redis.call('ZSCORE', prefix .. 'later', group)
  if waiting > 0 then
    if redis.call('ZSCORE', prefix .. 'ready', group) then
      status = 'ready'
    elseif later then
      status, freeIn = 'later', math.max(0, tonumber(later) - now)
    else
      status = 'blocked'
    end
  end
  local throttledUntil = limits.throttledUntil
  if throttledUntil and throttledUntil <= now then throttledUntil = nil end
  out[#out + 1] = waiting
  out[#out + 1] = redis.call('SCARD', groupKey(prefix, GROUP_ACTIVE, group))
  out[#out + 1] = limits.paused and 1 or 0
  out[#out + 1] = limits.concurrency or -1
  out[#out + 1] = limits.rateCount or -1
  out[#out + 1] = limits.rateWindow or -1
  out[#out + 1] = (own[1] or own[2]) and 1 or 0
  out[#out + 1] = throttledUntil or -1
  out[#out + 1] = used
  out[#out + 1] = status
  out[#out + 1] = freeIn
end
return out
