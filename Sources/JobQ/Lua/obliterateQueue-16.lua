--[[
  Deletes a whole queue in bounded batches: job records and schedules first (at most ARGV[2] per
  call), then, once none is left, the queue's own keys. Refused unless the queue is paused with no active
  job, or ARGV[1] forces it.

  KEYS[1]  jobq:{<q>}:meta        HASH
  KEYS[2]  jobq:{<q>}:wait        LIST
  KEYS[3]  jobq:{<q>}:prioritized ZSET
  KEYS[4]  jobq:{<q>}:delayed     ZSET
  KEYS[5]  jobq:{<q>}:active      ZSET
  KEYS[6]  jobq:{<q>}:completed   ZSET
  KEYS[7]  jobq:{<q>}:failed      ZSET
  KEYS[8]  jobq:{<q>}:cancelled   ZSET
  KEYS[9]  jobq:{<q>}:events      STREAM
  KEYS[10] jobq:{<q>}:marker      ZSET
  KEYS[11] jobq:{<q>}:seq         STRING
  KEYS[12] jobq:{<q>}:reaper      STRING  the reaper's lock
  KEYS[13] jobq:{<q>}:job:        prefix of job records
  KEYS[14] jobq:{<q>}:rate        LIST    the rate limit's log
  KEYS[15] jobq:{<q>}:g:          prefix of the groups' keys (include/groups.lua)
  KEYS[16] jobq:{<q>}:s:          prefix of the schedules' keys (ids, due, h:<id>)
  Derived keys: jobq:{<q>}:job:<id> HASH of each job deleted; every key of each known group;
  jobq:{<q>}:s:h:<id> of each schedule.

  ARGV[1] "1" = force (not paused, or active jobs: their workers get NOT_FOUND when they finish)
  ARGV[2] most jobs to delete in this call (<= 1000)

  Returns {deleted, remaining}: remaining = 0 means the queue is gone (meta last, so a paused
          queue stays paused until the end)
          {-5} NOT_PAUSED, {-6} HAS_ACTIVE: refused, nothing deleted
  Events: none (the stream itself is deleted at the end).
]]
--@include record
--@include codes
--@include groups
local force, batch = ARGV[1] == '1', tonumber(ARGV[2])
local jobPrefix = KEYS[13]
if not force then
  if redis.call('HEXISTS', KEYS[1], META.paused) == 0 then return {NOT_PAUSED} end
  if redis.call('ZCARD', KEYS[5]) > 0 then return {HAS_ACTIVE} end
end
local deleted = 0
local ids = redis.call('LRANGE', KEYS[2], -batch, -1)
if #ids > 0 then
  redis.call('LTRIM', KEYS[2], 0, -#ids - 1)
  for i = 1, #ids do redis.call('UNLINK', jobPrefix .. ids[i]) end
  deleted = #ids
end
for k = 3, 8 do
  if deleted < batch then
    ids = redis.call('ZRANGE', KEYS[k], 0, batch - deleted - 1)
    for i = 1, #ids do redis.call('UNLINK', jobPrefix .. ids[i]) end
    if #ids > 0 then redis.call('ZREMRANGEBYRANK', KEYS[k], 0, #ids - 1) end
    deleted = deleted + #ids
  end
end
-- Then each known group: its waiting jobs, then its own keys.
local groupPrefix = KEYS[15]
if deleted < batch then
  local groups = redis.call('SRANDMEMBER', groupPrefix .. 'known', 100)
  for i = 1, #groups do
    if deleted >= batch then break end
    local group = groups[i]
    local groupWait = groupKey(groupPrefix, GROUP_WAIT, group)
    ids = redis.call('ZRANGE', groupWait, 0, batch - deleted - 1)
    for j = 1, #ids do redis.call('UNLINK', jobPrefix .. ids[j]) end
    if #ids > 0 then redis.call('ZREMRANGEBYRANK', groupWait, 0, #ids - 1) end
    deleted = deleted + #ids
    if redis.call('ZCARD', groupWait) == 0 then
      redis.call('UNLINK', groupWait, groupKey(groupPrefix, GROUP_ACTIVE, group), groupKey(groupPrefix, GROUP_SETTINGS, group),
        groupKey(groupPrefix, GROUP_RATE, group))
      redis.call('SREM', groupPrefix .. 'known', group)
    end
  end
end
-- Then the schedules, so none makes a tick of a queue that is gone.
local schedulePrefix = KEYS[16]
if deleted < batch then
  local schedules = redis.call('SRANDMEMBER', schedulePrefix .. 'ids', batch - deleted)
  for i = 1, #schedules do
    redis.call('UNLINK', schedulePrefix .. 'h:' .. schedules[i])
    redis.call('SREM', schedulePrefix .. 'ids', schedules[i])
    redis.call('ZREM', schedulePrefix .. 'due', schedules[i])
  end
  deleted = deleted + #schedules
end
local remaining = redis.call('LLEN', KEYS[2])
for k = 3, 8 do remaining = remaining + redis.call('ZCARD', KEYS[k]) end
remaining = remaining + redis.call('SCARD', groupPrefix .. 'known') + redis.call('SCARD', schedulePrefix .. 'ids')
if remaining == 0 then
  redis.call('UNLINK', KEYS[9], KEYS[10], KEYS[11], KEYS[12], KEYS[14], groupPrefix .. 'ready', groupPrefix .. 'later',
    groupPrefix .. 'blocked', groupPrefix .. 'waiting', groupPrefix .. 'known', schedulePrefix .. 'due', KEYS[1])
end
return {deleted, remaining}
