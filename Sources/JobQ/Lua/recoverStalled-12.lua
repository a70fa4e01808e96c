--[[
  The reaper: active jobs whose lease ran out (their worker died or hung) go back to waiting
  with stallCount + 1; the stall that exceeds the job's maxStalls fails it (reason "stalled");
  a job with a cancel request ends cancelled. Bounded: at most ARGV[2] jobs per call.

  KEYS[1] jobq:{<q>}:active    ZSET    score = lease deadline ms
  KEYS[2]  jobq:{<q>}:wait        LIST    waiting jobs of priority 0
  KEYS[3]  jobq:{<q>}:prioritized ZSET    other priorities; score = (1000 - priority) * 2^41 + sequence
  KEYS[4]  jobq:{<q>}:failed      ZSET    score = finish ms
  KEYS[5]  jobq:{<q>}:cancelled   ZSET    score = finish ms
  KEYS[6]  jobq:{<q>}:meta        HASH    retention limits; the concurrency cap (cc)
  KEYS[7]  jobq:{<q>}:marker      ZSET    wake-up marker
  KEYS[8]  jobq:{<q>}:events      STREAM
  KEYS[9]  jobq:{<q>}:seq         STRING  sequence counter
  KEYS[10] jobq:{<q>}:job:        prefix of job records
  KEYS[11] jobq:{<q>}:reaper      STRING  the reaper lock: the id of the worker reaping now
  KEYS[12] jobq:{<q>}:g:          prefix of the groups' keys (include/groups.lua)
  Derived keys: jobq:{<q>}:job:<id> HASH of each expired job and of records trimmed by retention;
  the group keys of each expired job's group (its slot frees; a requeued job rejoins it).

  ARGV[1] events stream cap
  ARGV[2] most jobs to recover in this call (<= 1000)
  ARGV[3] the caller's worker id (the lock's holder)
  ARGV[4] the lock's length, ms; 0 = no lock (a test, an operator)

  Returns {requeued, failed, cancelled, remaining}: remaining = expired leases left for the next
  call; {0, 0, 0, -1} when another worker holds the lock (it reaps this round). The lock is
  taken (or kept, by its holder) in the same call, so one worker at a time reaps and the lock
  works under OOM like the rest. The lease token is cleared, so a late finish from the stalled run gets LEASE_LOST.
  A stall counts in stallCount (sc), never in attempts: the take of the stalled run counted an
  attempt (am), so it is given back here, whichever way the job goes.
  Flags: allow-oom. It only moves ids between sets of the queue, rewrites fields in place and
  deletes trimmed records; its events are capped. Refusing it under OOM would leave dead
  workers' jobs stuck in active until memory is freed.
  Events: "stalled" (requeued), "failed" (reason stalled) or "cancelled" per job.
]]
--@include record
--@include nowMs
--@include emit
--@include enqueueWaiting
--@include trimFinished
--@include retention
--@include keepPreviousError
--@include endCancelled
local activeKey, waitKey, prioritizedKey, failedKey, cancelledKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local metaKey, markerKey, eventsKey, seqKey, jobPrefix, lockKey = KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10], KEYS[11]
local groupPrefix = KEYS[12]
local maxLen, batch, holder, lockMs = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
if lockMs > 0 then
  local current = redis.call('GET', lockKey)
  if current and current ~= holder then return {0, 0, 0, -1} end
  if not current then redis.call('SET', lockKey, holder, 'PX', lockMs) end
end
local now = nowMs()
local _, keepFailed, keepCancelled = retention(metaKey)
local ids = redis.call('ZRANGEBYSCORE', activeKey, '-inf', now, 'LIMIT', 0, batch)
local requeued, failed, cancelled = 0, 0, 0
for i = 1, #ids do
  local id = ids[i]
  local jobKey = jobPrefix .. id
  redis.call('ZREM', activeKey, id)
  local v = redis.call('HMGET', jobKey, F.state, F.stallCount, F.maxStalls, F.cancelRequested, F.cancelReason, F.cancelRequestedBy, F.priority, F.attemptsMade, F.errorReason, F.errorDetails, F.removeOnFail, F.group)
  if v[1] then
    if v[12] and groupRelease(groupPrefix, seqKey, v[12], id) then redis.call('ZADD', markerKey, 0, '0') end
    local stalls = tonumber(v[2] or 0) + 1
    local maxStalls = tonumber(v[3] or 1)
    local attempts = tonumber(v[8] or 1) - 1
    if attempts < 0 then attempts = 0 end
    redis.call('HDEL', jobKey, F.execution)
    if v[4] == FLAG then
      endCancelled(jobKey, cancelledKey, eventsKey, jobPrefix, maxLen, keepCancelled, id, now, v[5], v[6], v[8] or 0, nil,
        {F.stallCount, stalls, F.attemptsMade, attempts})
      cancelled = cancelled + 1
    elseif stalls > maxStalls then
      local fields = {'HSET', jobKey, F.state, 'failed', F.finishedAt, now, F.stallCount, stalls, F.attemptsMade, attempts, F.errorReason, 'stalled',
        F.errorDetails, 'the worker holding the job stopped renewing its lease ' .. stalls .. ' times'}
      keepPreviousError(fields, v[9], v[10])
      redis.call(unpack(fields))
      emit(eventsKey, maxLen, 'failed', id, {EV.attempt, v[8] or 0, EV.reason, 'stalled'})
      if v[11] == FLAG then
        redis.call('UNLINK', jobKey)
      else
        redis.call('ZADD', failedKey, now, id)
      end
      trimFinished(failedKey, keepFailed, jobPrefix, 10)
      failed = failed + 1
    else
      redis.call('HSET', jobKey, F.state, 'waiting', F.stallCount, stalls, F.attemptsMade, attempts)
      enqueueWaiting(waitKey, prioritizedKey, seqKey, markerKey, id, tonumber(v[7] or 0), groupPrefix, v[12])
      emit(eventsKey, maxLen, 'stalled', id, {EV.attempt, v[8] or 0, EV.stallCount, stalls})
      requeued = requeued + 1
    end
  end
end
-- Slots freed under a concurrency cap: wake a fetcher waiting for one.
if #ids > 0 and redis.call('HEXISTS', metaKey, META.concurrency) == 1
    and (redis.call('LLEN', waitKey) > 0 or redis.call('ZCARD', prioritizedKey) > 0
      or tonumber(redis.call('GET', groupPrefix .. 'waiting') or 0) > 0) then
  redis.call('ZADD', markerKey, 0, '0')
end
local remaining = redis.call('ZCOUNT', activeKey, '-inf', now)
return {requeued, failed, cancelled, remaining}
