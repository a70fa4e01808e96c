--[[
  Purge (alias drain): deletes waiting and delayed jobs, at most ARGV[1] per call. Active and
  finished jobs are left alone.

  KEYS[1] jobq:{<q>}:wait        LIST    waiting jobs of priority 0
  KEYS[2] jobq:{<q>}:prioritized ZSET    waiting jobs of other priorities
  KEYS[3] jobq:{<q>}:delayed     ZSET
  KEYS[4] jobq:{<q>}:events      STREAM
  KEYS[5] jobq:{<q>}:job:        prefix of job records
  KEYS[6] jobq:{<q>}:g:          prefix of the groups' keys (include/groups.lua)
  Derived keys: jobq:{<q>}:job:<id> HASH of each job deleted; the group keys of each group with
  waiting jobs.

  ARGV[1] most jobs to delete (<= 1000)
  ARGV[2] events stream cap

  Returns {deleted, remaining}: remaining = waiting + delayed jobs left.
  Events: "removed" per job.
]]
--@include record
--@include emit
--@include groups
local waitKey, prioritizedKey, delayedKey, eventsKey, jobPrefix = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local groupPrefix = KEYS[6]
local batch, maxLen = tonumber(ARGV[1]), ARGV[2]
local deleted = 0

local function drop(ids, from)
  for i = 1, #ids do
    redis.call('UNLINK', jobPrefix .. ids[i])
    emit(eventsKey, maxLen, 'removed', ids[i], {EV.previousState, from})
  end
  deleted = deleted + #ids
end

-- The list from its oldest end (the next to run).
local ids = redis.call('LRANGE', waitKey, -batch, -1)
if #ids > 0 then
  redis.call('LTRIM', waitKey, 0, -#ids - 1)
  drop(ids, 'waiting')
end
for _, setKey in ipairs({prioritizedKey, delayedKey}) do
  if deleted < batch then
    ids = redis.call('ZRANGE', setKey, 0, batch - deleted - 1)
    if #ids > 0 then
      redis.call('ZREMRANGEBYRANK', setKey, 0, #ids - 1)
      drop(ids, setKey == delayedKey and 'delayed' or 'waiting')
    end
  end
end
-- Then the groups' lines: every group with waiting jobs is ready, later or blocked.
if deleted < batch then
  local groups = redis.call('ZRANGE', groupPrefix .. 'ready', 0, batch - 1)
  for _, g in ipairs(redis.call('ZRANGE', groupPrefix .. 'later', 0, batch - 1)) do groups[#groups + 1] = g end
  for _, g in ipairs(redis.call('SMEMBERS', groupPrefix .. 'blocked')) do groups[#groups + 1] = g end
  for i = 1, #groups do
    if deleted >= batch then break end
    local group = groups[i]
    local groupWait = groupKey(groupPrefix, GROUP_WAIT, group)
    ids = redis.call('ZRANGE', groupWait, 0, batch - deleted - 1)
    for j = 1, #ids do unqueueGroup(groupPrefix, group, ids[j]) end
    drop(ids, 'waiting')
  end
end
return {deleted, redis.call('LLEN', waitKey) + redis.call('ZCARD', prioritizedKey) + redis.call('ZCARD', delayedKey)
  + tonumber(redis.call('GET', groupPrefix .. 'waiting') or 0)}
