--[[
  Ends a run of an active job, in the outcome order of docs/job-lifecycle.md, applies retention, and (optionally)
  takes the next job in the same call.

  KEYS[1]  jobq:{<q>}:job:<id>  HASH    the job's record
  KEYS[2]  jobq:{<q>}:active    ZSET    score = lease deadline ms
  KEYS[3]  jobq:{<q>}:wait        LIST    waiting jobs of priority 0
  KEYS[4]  jobq:{<q>}:prioritized ZSET    other priorities; score = (1000 - priority) * 2^41 + sequence
  KEYS[5]  jobq:{<q>}:delayed     ZSET    score = due ms
  KEYS[6]  jobq:{<q>}:completed   ZSET    score = finish ms
  KEYS[7]  jobq:{<q>}:failed      ZSET    score = finish ms
  KEYS[8]  jobq:{<q>}:cancelled   ZSET    score = finish ms
  KEYS[9]  jobq:{<q>}:meta        HASH    paused flag, retention limits (kc, kf, kx), flow limits
  KEYS[10] jobq:{<q>}:marker      ZSET    wake-up marker
  KEYS[11] jobq:{<q>}:events      STREAM
  KEYS[12] jobq:{<q>}:seq         STRING  sequence counter
  KEYS[13] jobq:{<q>}:job:        prefix of job records
  KEYS[14] jobq:{<q>}:rate        LIST    the rate limit's log (for the next job's take)
  KEYS[15] jobq:{<q>}:g:          prefix of the groups' keys (include/groups.lua)
  Derived keys: jobq:{<q>}:job:<id> HASH of records trimmed by retention, of delayed jobs
  promoted and of the next job taken; the group keys of the job's group (its slot frees) and
  those the take touches.

  ARGV[1]  job id
  ARGV[2]  lease token of this run
  ARGV[3]  outcome: completed | failed | unrecoverable | timeout | cancelled | shutdown |
           ratelimited (the handler threw RateLimited: back to the front of waiting, no attempt
           used, the queue throttled for ARGV[6] ms) | ratelimited-group (the same, but the
           job's group is throttled; the queue when the job has no group)
  ARGV[4]  result bytes (completed) or error details (failures)
  ARGV[5]  error reason (failures)
  ARGV[6]  retry delay in ms if attempts remain (failed, timeout); -1 = never retry; the
           throttle in ms (ratelimited)
  ARGV[7]  events stream cap
  ARGV[8]  "1" to take the next job in the same call
  ARGV[9]  lease token for the next job
  ARGV[10] lease length, ms
  ARGV[11] worker id
  ARGV[12] event excerpt limit in bytes (result / error in completed and failed events)

  Returns {1, state, next}  applied; state = completed | failed | cancelled | delayed | waiting;
                            next = the takeNext reply ({1, id, nextDue, fields} | {0, nextDue} |
                            {-3} | {-10, waitMs, limit}) or {} when not asked. Under a concurrency
                            cap, a finish that frees a slot without taking the next job re-arms
                            the marker, so a fetcher waiting for a slot wakes; so does one that
                            brings the job's group back into the rotation.
          {-8, state}       OK_ALREADY: this run's outcome was applied before
          {-2}              LEASE_LOST: the job is not active with this token; nothing changed
          {-1}              NOT_FOUND
  Flags: allow-oom. Finishing is what frees memory (retention trims records; a finished job
  drops its lease fields) and its growth is bounded by the result and error limits. Refused
  under OOM, every run would end as a stall and a full Redis would turn into failed jobs.
  Events: exactly one of completed (result excerpt), failed (reason, details excerpt), cancelled,
  retrying (delay), waiting (shutdown requeue; rateLimited, with the throttle as the delay); then
  those of the take.
]]
--@include record
--@include codes
--@include nowMs
--@include emit
--@include excerpt
--@include enqueueWaiting
--@include trimFinished
--@include queueMeta
--@include takeNext
--@include keepPreviousError
--@include endCancelled
--@include groups
local jobKey, activeKey, waitKey, prioritizedKey, delayedKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local completedKey, failedKey, cancelledKey, metaKey = KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local markerKey, eventsKey, seqKey, jobPrefix, rateKey, groupPrefix = KEYS[10], KEYS[11], KEYS[12], KEYS[13], KEYS[14], KEYS[15]
local id, token, outcome, value, reason = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local retryDelay, maxLen, fetchNext = tonumber(ARGV[6]), ARGV[7], ARGV[8] == '1'
local excerptLimit = tonumber(ARGV[12])

local v = redis.call('HMGET', jobKey, F.state, F.execution, F.attemptsMade, F.attempts, F.priority, F.cancelRequested, F.cancelReason, F.cancelRequestedBy, F.removeOnComplete, F.removeOnFail, F.errorReason, F.errorDetails, F.group)
local job = {state = v[1], execution = v[2], attemptsMade = v[3], attempts = v[4], priority = v[5],
             cancelRequested = v[6], cancelReason = v[7], cancelRequestedBy = v[8], removeOnComplete = v[9],
             removeOnFail = v[10], errorReason = v[11], errorDetails = v[12], group = v[13]}
if not job.state then return {NOT_FOUND} end
if job.execution ~= token then return {LEASE_LOST} end
if job.state ~= 'active' then return {OK_ALREADY, job.state} end

local now = nowMs()
local meta = queueMeta(metaKey)
local keepCompleted, keepFailed, keepCancelled = meta.keepCompleted, meta.keepFailed, meta.keepCancelled
local attempt = tonumber(job.attemptsMade or 1)
local maxAttempts = tonumber(job.attempts or 3)
redis.call('ZREM', activeKey, id)
-- The group's slot frees first, so a job requeued below finds its group as it is now.
local groupWoke = job.group and groupRelease(groupPrefix, seqKey, job.group, id)

local function finishAs(state, setKey, keep, fields, eventFields)
  local args = {'HSET', jobKey, F.state, state, F.finishedAt, now}
  for i = 1, #fields do args[#args + 1] = fields[i] end
  redis.call(unpack(args))
  emit(eventsKey, maxLen, state, id, eventFields)
  if keep then
    redis.call('ZADD', setKey, now, id)
  else
    redis.call('UNLINK', jobKey)
  end
  local limit = keepCompleted
  if state == 'failed' then limit = keepFailed elseif state == 'cancelled' then limit = keepCancelled end
  trimFinished(setKey, limit, jobPrefix, 10)
end

local state
if outcome == 'completed' then
  state = 'completed'
  finishAs(state, completedKey, job.removeOnComplete ~= FLAG, {F.result, value}, {EV.attempt, attempt, EV.result, excerpt(value, excerptLimit)})
elseif job.cancelRequested == FLAG or outcome == 'cancelled' then
  state = 'cancelled'
  local why = job.cancelReason or reason
  endCancelled(jobKey, cancelledKey, eventsKey, jobPrefix, maxLen, keepCancelled, id, now, why, job.cancelRequestedBy,
    attempt, excerptLimit, {})
elseif outcome == 'shutdown' then
  -- Requeued with no attempt used; the token stays so a repeat of this call is recognised.
  state = 'waiting'
  local args = {'HSET', jobKey, F.state, 'waiting', F.attemptsMade, attempt - 1}
  redis.call(unpack(args))
  enqueueWaiting(waitKey, prioritizedKey, seqKey, markerKey, id, tonumber(job.priority or 0), groupPrefix, job.group)
  emit(eventsKey, maxLen, 'waiting', id, {EV.previousState, 'active', EV.reason, 'shutdown'})
elseif outcome == 'ratelimited' or outcome == 'ratelimited-group' then
  -- The start did not count as an attempt; the job goes first in its line, and the queue (or
  -- its group) waits out the throttle (a longer one already set stays).
  state = 'waiting'
  redis.call('HSET', jobKey, F.state, 'waiting', F.attemptsMade, attempt - 1)
  local untilMs = now + math.max(retryDelay, 1)
  if job.group then
    -- Sequence 0: ahead of every job of its priority in the group.
    enqueueGroup(groupPrefix, seqKey, markerKey, job.group, id, priorityScore(tonumber(job.priority or 0), 0))
  elseif tonumber(job.priority or 0) == 0 then
    -- Into an empty line: wake a fetcher, which answers the throttle with a timer.
    if redis.call('RPUSH', waitKey, id) == 1 then redis.call('ZADD', markerKey, 0, '0') end
  else
    enqueueWaiting(waitKey, prioritizedKey, seqKey, markerKey, id, tonumber(job.priority))
  end
  if outcome == 'ratelimited-group' and job.group then
    groupThrottle(groupPrefix, job.group, untilMs)
  elseif not meta.throttledUntil or meta.throttledUntil < untilMs then
    redis.call('HSET', metaKey, META.throttledUntil, untilMs)
    meta.throttledUntil = untilMs
  end
  emit(eventsKey, maxLen, 'waiting', id, {EV.previousState, 'active', EV.reason, 'rateLimited', EV.retryDelay, retryDelay})
else
  local retry = outcome ~= 'unrecoverable' and retryDelay >= 0 and attempt < maxAttempts
  local errorFields = {F.errorReason, reason, F.errorDetails, value}
  keepPreviousError(errorFields, job.errorReason, job.errorDetails)
  if retry then
    if retryDelay > 0 then
      state = 'delayed'
      local args = {'HSET', jobKey, F.state, 'delayed', F.dueAt, now + retryDelay}
      for i = 1, #errorFields do args[#args + 1] = errorFields[i] end
      redis.call(unpack(args))
      local first = redis.call('ZRANGE', delayedKey, 0, 0, 'WITHSCORES')
      redis.call('ZADD', delayedKey, now + retryDelay, id)
      if not first[2] or now + retryDelay < tonumber(first[2]) then redis.call('ZADD', markerKey, 0, '0') end
    else
      state = 'waiting'
      local args = {'HSET', jobKey, F.state, 'waiting'}
      for i = 1, #errorFields do args[#args + 1] = errorFields[i] end
      redis.call(unpack(args))
      enqueueWaiting(waitKey, prioritizedKey, seqKey, markerKey, id, tonumber(job.priority or 0), groupPrefix, job.group)
    end
    emit(eventsKey, maxLen, 'retrying', id, {EV.attempt, attempt, EV.retryDelay, retryDelay, EV.reason, reason,
      EV.details, excerpt(value, excerptLimit)})
  else
    state = 'failed'
    finishAs(state, failedKey, job.removeOnFail ~= FLAG, errorFields,
      {EV.attempt, attempt, EV.reason, reason, EV.details, excerpt(value, excerptLimit)})
  end
end

local nextJob = {}
if fetchNext then
  nextJob = takeNext(waitKey, prioritizedKey, activeKey, delayedKey, metaKey, markerKey, eventsKey, seqKey, jobPrefix,
    rateKey, groupPrefix, ARGV[9], tonumber(ARGV[10]), ARGV[11], maxLen, now, 100, meta, false)
elseif meta.concurrency and (redis.call('LLEN', waitKey) > 0 or redis.call('ZCARD', prioritizedKey) > 0
    or tonumber(redis.call('GET', groupPrefix .. 'waiting') or 0) > 0) then
  -- A slot freed that this worker does not refill: wake a fetcher waiting for one.
  redis.call('ZADD', markerKey, 0, '0')
end
-- The job's group rejoined the rotation and this call did not take its turn: wake a fetcher.
if groupWoke and redis.call('ZSCORE', groupPrefix .. 'ready', job.group) then redis.call('ZADD', markerKey, 0, '0') end
return {1, state, nextJob}
