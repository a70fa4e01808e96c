--[[
  Creates or changes one schedule (docs/schedules.md). An upsert of the same spec and job
  changes nothing, so every worker may upsert its configured schedules at start. A changed one
  takes effect from its next tick, at once: the tick job made ahead under the old spec, if it
  is not yet due, is removed with it.

  KEYS[1] jobq:{<q>}:s:h:<id>  HASH    the schedule (SCHED fields)
  KEYS[2] jobq:{<q>}:s:ids     SET     every schedule's id
  KEYS[3] jobq:{<q>}:s:due     ZSET    schedules to advance; score = when (ms, Redis clock)
  KEYS[4] jobq:{<q>}:job:      prefix of job records
  KEYS[5] jobq:{<q>}:delayed   ZSET    delayed jobs
  KEYS[6] jobq:{<q>}:events    STREAM  capped event stream
  KEYS[7] jobq:{<q>}:cancel    channel: an empty message wakes the workers' schedulers
  Derived keys: jobq:{<q>}:job:<pj>, the record of the schedule's tick job not yet due.

  ARGV[1] schedule id
  ARGV[2] the first tick under the given spec, ms since the epoch (Redis clock)
  ARGV[3] when to advance for that tick, ms (Redis clock)
  ARGV[4] events stream cap (MAXLEN ~)
  ARGV[5] '1' = publish with SPUBLISH (cluster), else PUBLISH
  ARGV[6], ARGV[7], ... the spec as name, value pairs (SPEC fields; a field left out is unset)

  Returns {0, nextTick} unchanged: the same spec and job were stored already; nothing written
          {1, nextTick} created
          {2, nextTick} changed (a paused schedule stays paused)
  Events: "removed" (previous state "delayed") for a tick job not yet due that the change
          replaced.
]]
--@include record
--@include nowMs
--@include emit
local scheduleKey, idsKey, dueKey, jobPrefix, delayedKey, eventsKey, channel =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local id, firstTick, advanceAt, maxLen, sharded = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]

local given = {}
for i = 6, #ARGV, 2 do given[ARGV[i]] = ARGV[i + 1] end

local exists = redis.call('EXISTS', scheduleKey) == 1
if exists then
  local stored = redis.call('HMGET', scheduleKey, unpack(SPEC))
  local same = true
  for i = 1, #SPEC do
    if (stored[i] or nil) ~= given[SPEC[i]] then same = false; break end
  end
  if same then return {0, tonumber(redis.call('HGET', scheduleKey, SCHED.nextTick))} end
end

local now = nowMs()
if exists then
  local pending = redis.call('HGET', scheduleKey, SCHED.pendingJob)
  if pending and redis.call('ZREM', delayedKey, pending) == 1 then
    redis.call('UNLINK', jobPrefix .. pending)
    emit(eventsKey, maxLen, 'removed', pending, {EV.previousState, 'delayed', EV.schedule, id})
  end
  redis.call('HDEL', scheduleKey, SCHED.pendingJob, SCHED.pendingTick)
end

local unset = {}
local args = {'HSET', scheduleKey}
for i = 1, #SPEC do
  local v = given[SPEC[i]]
  if v then args[#args + 1] = SPEC[i]; args[#args + 1] = v else unset[#unset + 1] = SPEC[i] end
end
args[#args + 1] = SCHED.nextTick; args[#args + 1] = firstTick
args[#args + 1] = SCHED.updatedAt; args[#args + 1] = now
if not exists then args[#args + 1] = SCHED.createdAt; args[#args + 1] = now end
redis.call(unpack(args))
if #unset > 0 then redis.call('HDEL', scheduleKey, unpack(unset)) end
redis.call('HINCRBY', scheduleKey, SCHED.version, 1)
redis.call('SADD', idsKey, id)
if redis.call('HEXISTS', scheduleKey, SCHED.paused) == 0 then
  redis.call('ZADD', dueKey, advanceAt, id)
  redis.call(sharded == '1' and 'SPUBLISH' or 'PUBLISH', channel, '')
end
return {exists and 2 or 1, tonumber(firstTick)}
