--[[
  Cancels a job from any process. Waiting or delayed: ends cancelled at once. Active: the cancel
  request is stored in the record (the durable path: renewals report it) and published on the
  queue's cancel channel for the owner's subscriber. Finished: nothing changes.

  KEYS[1] jobq:{<q>}:job:<id>  HASH    the job's record
  KEYS[2] jobq:{<q>}:wait        LIST    waiting jobs of priority 0
  KEYS[3] jobq:{<q>}:prioritized ZSET    waiting jobs of other priorities
  KEYS[4] jobq:{<q>}:delayed     ZSET
  KEYS[5] jobq:{<q>}:cancelled   ZSET    score = finish ms
  KEYS[6] jobq:{<q>}:meta        HASH    retention limits
  KEYS[7] jobq:{<q>}:events      STREAM
  KEYS[8] jobq:{<q>}:cancel      channel (pub/sub; sharded in cluster mode)
  KEYS[9] jobq:{<q>}:job:        prefix of job records
  Derived keys: jobq:{<q>}:job:<id> HASH of records trimmed by retention.

  ARGV[1] job id
  ARGV[2] reason (free text, stored and sent with the event)
  ARGV[3] who asked (free text: host, user, tool)
  ARGV[4] events stream cap
  ARGV[5] "1" to publish with SPUBLISH (cluster), else PUBLISH

  Returns {1}              cancelled (was waiting or delayed)
          {2, listeners}   cancel requested (active); listeners = subscribers that received it
          {3, state}       already finished (completed, failed or cancelled)
          {-1}             NOT_FOUND
  Side effects: PUBLISH/SPUBLISH <id> on KEYS[7] (active jobs).
  Events: "cancelled" (waiting/delayed) or "cancel-requested" (active).
]]
--@include common
local jobKey, waitKey, prioritizedKey, delayedKey, cancelledKey, metaKey, eventsKey, channel, jobPrefix =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local id, reason, by, maxLen = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

local v = redis.call('HMGET', jobKey, 's', 'p')
local state = v[1]
if not state then return {NOT_FOUND} end
if state == 'completed' or state == 'failed' or state == 'cancelled' then return {3, state} end

if state == 'active' then
  redis.call('HSET', jobKey, 'cr', '1', 'cx', reason, 'cb', by)
  emit(eventsKey, maxLen, 'cancel-requested', id, {'by', by, 'er', reason})
  local listeners
  if ARGV[5] == '1' then
    listeners = redis.call('SPUBLISH', channel, id)
  else
    listeners = redis.call('PUBLISH', channel, id)
  end
  return {2, listeners}
end

local now = nowMs()
if state == 'waiting' then
  unqueueWaiting(waitKey, prioritizedKey, id, tonumber(v[2] or 0))
else
  redis.call('ZREM', delayedKey, id)
end
redis.call('HSET', jobKey, 's', 'cancelled', 'ft', now, 'cr', '1', 'cx', reason, 'cb', by, 'er', 'cancelled', 'ed', reason)
redis.call('HDEL', jobKey, 'du')
redis.call('ZADD', cancelledKey, now, id)
emit(eventsKey, maxLen, 'cancelled', id, {'by', by, 'er', reason})
local _, _, keepCancelled = retention(metaKey)
trimFinished(cancelledKey, keepCancelled, jobPrefix, 10)
return {1}
