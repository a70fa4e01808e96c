--[[
  Pauses, resumes or removes one schedule. Pause and remove delete the schedule's tick job that
  is not yet due, so nothing of it starts afterwards (a run already due or running is left
  alone: cancel it if it must stop); resume starts again from the next tick after now (ticks
  while paused are not misfires).

  KEYS[1] jobq:{<q>}:s:h:<id>  HASH    the schedule (SCHED fields)
  KEYS[2] jobq:{<q>}:s:ids     SET     every schedule's id
  KEYS[3] jobq:{<q>}:s:due     ZSET    schedules to advance; score = when (ms, Redis clock)
  KEYS[4] jobq:{<q>}:job:      prefix of job records
  KEYS[5] jobq:{<q>}:delayed   ZSET    delayed jobs
  KEYS[6] jobq:{<q>}:events    STREAM  capped event stream
  KEYS[7] jobq:{<q>}:cancel    channel: an empty message wakes the workers' schedulers
  Derived keys: jobq:{<q>}:job:<pj>, the record of the schedule's tick job not yet due.

  ARGV[1] schedule id
  ARGV[2] 'pause', 'resume' or 'remove'
  ARGV[3] resume: the first tick after now, ms (Redis clock); else 0
  ARGV[4] resume: when to advance for it, ms; else 0
  ARGV[5] events stream cap (MAXLEN ~)
  ARGV[6] '1' = publish with SPUBLISH (cluster), else PUBLISH

  Returns {1, removedJob} applied; removedJob = the id of the tick job removed, or ''
          {-8, ''} OK_ALREADY: already paused (pause) or not paused (resume)
          {-1, ''} NOT_FOUND: no such schedule
  Events: "removed" (previous state "delayed") for the tick job removed.
]]
--@include record
--@include codes
--@include emit
local scheduleKey, idsKey, dueKey, jobPrefix, delayedKey, eventsKey, channel =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local id, action, firstTick, advanceAt, maxLen, sharded = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]

if redis.call('EXISTS', scheduleKey) == 0 then
  redis.call('SREM', idsKey, id)
  redis.call('ZREM', dueKey, id)
  return {NOT_FOUND, ''}
end
local paused = redis.call('HEXISTS', scheduleKey, SCHED.paused) == 1
if (action == 'pause' and paused) or (action == 'resume' and not paused) then return {OK_ALREADY, ''} end

local removed = ''
if action ~= 'resume' then
  local pending = redis.call('HGET', scheduleKey, SCHED.pendingJob)
  if pending and redis.call('ZREM', delayedKey, pending) == 1 then
    redis.call('UNLINK', jobPrefix .. pending)
    emit(eventsKey, maxLen, 'removed', pending, {EV.previousState, 'delayed', EV.schedule, id})
    removed = pending
    redis.call('HDEL', scheduleKey, SCHED.pendingJob, SCHED.pendingTick)
  end
  redis.call('ZREM', dueKey, id)
end

if action == 'remove' then
  redis.call('UNLINK', scheduleKey)
  redis.call('SREM', idsKey, id)
elseif action == 'pause' then
  redis.call('HSET', scheduleKey, SCHED.paused, FLAG)
  redis.call('HINCRBY', scheduleKey, SCHED.version, 1)
else
  redis.call('HDEL', scheduleKey, SCHED.paused)
  redis.call('HSET', scheduleKey, SCHED.nextTick, firstTick)
  redis.call('HINCRBY', scheduleKey, SCHED.version, 1)
  redis.call('ZADD', dueKey, advanceAt, id)
  redis.call(sharded == '1' and 'SPUBLISH' or 'PUBLISH', channel, '')
end
return {1, removed}
