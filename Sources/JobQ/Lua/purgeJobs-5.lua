--[[
  Purge (alias drain): deletes waiting and delayed jobs, at most ARGV[1] per call. Active and
  finished jobs are left alone.

  KEYS[1] jobq:{<q>}:wait        LIST    waiting jobs of priority 0
  KEYS[2] jobq:{<q>}:prioritized ZSET    waiting jobs of other priorities
  KEYS[3] jobq:{<q>}:delayed     ZSET
  KEYS[4] jobq:{<q>}:events      STREAM
  KEYS[5] jobq:{<q>}:job:        prefix of job records
  Derived keys: jobq:{<q>}:job:<id> HASH of each job deleted.

  ARGV[1] most jobs to delete (<= 1000)
  ARGV[2] events stream cap

  Returns {deleted, remaining}: remaining = waiting + delayed jobs left.
  Events: "removed" per job.
]]
--@include record
--@include emit
local waitKey, prioritizedKey, delayedKey, eventsKey, jobPrefix = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
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
return {deleted, redis.call('LLEN', waitKey) + redis.call('ZCARD', prioritizedKey) + redis.call('ZCARD', delayedKey)}
