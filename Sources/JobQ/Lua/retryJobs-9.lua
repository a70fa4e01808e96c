--[[
  Sends failed or cancelled jobs back to waiting, by id or all failed ones in bounded batches.
  Attempts and stall count start again; the last error is kept as the previous error.

  KEYS[1] jobq:{<q>}:failed    ZSET
  KEYS[2] jobq:{<q>}:cancelled ZSET
  KEYS[3] jobq:{<q>}:wait        LIST    waiting jobs of priority 0
  KEYS[4] jobq:{<q>}:prioritized ZSET    other priorities; score = (1000 - priority) * 2^41 + sequence
  KEYS[5] jobq:{<q>}:marker      ZSET    wake-up marker
  KEYS[6] jobq:{<q>}:events      STREAM
  KEYS[7] jobq:{<q>}:seq         STRING  sequence counter
  KEYS[8] jobq:{<q>}:job:        prefix of job records
  KEYS[9] jobq:{<q>}:g:          prefix of the groups' keys (include/groups.lua)
  Derived keys: jobq:{<q>}:job:<id> HASH of each job retried; the group keys of its group.

  ARGV[1] events stream cap
  ARGV[2] "ids": retry the ids in ARGV[4...]; "failed": the oldest ARGV[3] failed jobs
  ARGV[3] most jobs in this call (<= 1000)

  Returns ids mode:    {code per id}: 1 retried, -7 WRONG_STATE (not failed/cancelled), -1 NOT_FOUND
          failed mode: {retried, remaining}
  Events: "waiting" per job (from failed / cancelled).
]]
--@include record
--@include codes
--@include emit
--@include enqueueWaiting
--@include keepPreviousError
local failedKey, cancelledKey, waitKey, prioritizedKey, markerKey, eventsKey, seqKey, jobPrefix =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local groupPrefix = KEYS[9]
local maxLen = ARGV[1]

local function retryOne(id)
  local jobKey = jobPrefix .. id
  local v = redis.call('HMGET', jobKey, F.state, F.priority, F.errorReason, F.errorDetails, F.group)
  if not v[1] then return NOT_FOUND end
  local from = v[1]
  if from ~= 'failed' and from ~= 'cancelled' then return WRONG_STATE end
  redis.call('ZREM', from == 'failed' and failedKey or cancelledKey, id)
  redis.call('HDEL', jobKey, F.attemptsMade, F.stallCount, F.errorReason, F.errorDetails, F.finishedAt, F.result, F.cancelRequested, F.cancelReason, F.cancelRequestedBy, F.execution, F.worker, F.startedAt, F.progressPercent, F.progressMessage)
  local fields = {'HSET', jobKey, F.state, 'waiting'}
  keepPreviousError(fields, v[3], v[4])
  redis.call(unpack(fields))
  enqueueWaiting(waitKey, prioritizedKey, seqKey, markerKey, id, tonumber(v[2] or 0), groupPrefix, v[5])
  emit(eventsKey, maxLen, 'waiting', id, {EV.previousState, from})
  return 1
end

if ARGV[2] == 'failed' then
  local ids = redis.call('ZRANGE', failedKey, 0, tonumber(ARGV[3]) - 1)
  for i = 1, #ids do retryOne(ids[i]) end
  return {#ids, redis.call('ZCARD', failedKey)}
end
local codes = {}
for i = 4, #ARGV do codes[#codes + 1] = retryOne(ARGV[i]) end
return codes
