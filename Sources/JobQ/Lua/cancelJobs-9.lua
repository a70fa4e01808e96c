--[[
  Cancels jobs from any process, up to 1,000 ids in one call (a bulk cancel costs one round trip
  per batch, so workers do not start the jobs being cancelled meanwhile). Per job: waiting or
  delayed ends cancelled at once; active gets the cancel request stored in its record (the
  durable path: renewals report it) and published on the queue's cancel channel for the owner's
  subscriber; finished changes nothing.

  KEYS[1] jobq:{<q>}:wait        LIST    waiting jobs of priority 0
  KEYS[2] jobq:{<q>}:prioritized ZSET    waiting jobs of other priorities
  KEYS[3] jobq:{<q>}:delayed     ZSET
  KEYS[4] jobq:{<q>}:cancelled   ZSET    score = finish ms
  KEYS[5] jobq:{<q>}:meta        HASH    retention limits
  KEYS[6] jobq:{<q>}:events      STREAM
  KEYS[7] jobq:{<q>}:cancel      channel (pub/sub; sharded in cluster mode)
  KEYS[8] jobq:{<q>}:job:        prefix of job records
  KEYS[9] jobq:{<q>}:g:          prefix of the groups' keys (include/groups.lua)
  Derived keys: jobq:{<q>}:job:<id> HASH of each id in ARGV and of records trimmed by retention;
  the group keys of each waiting job's group.

  ARGV[1] reason (free text, stored and sent with the event)
  ARGV[2] who asked (free text: host, user, tool)
  ARGV[3] events stream cap
  ARGV[4] "1" to publish with SPUBLISH (cluster), else PUBLISH
  ARGV[5], ARGV[6], ... job ids (at most 1,000)

  Returns a flat list, two items per id, in order:
          1, 0             CANCELLED: it was waiting or delayed
          2, listeners     CANCEL_REQUESTED: it is active; listeners = subscribers that received it
          3, state         ALREADY_FINISHED: completed, failed or cancelled before
          -1, 0            NOT_FOUND
  Side effects: PUBLISH/SPUBLISH <id> on KEYS[7] per active job.
  Events: "cancelled" (waiting/delayed) or "cancel-requested" (active), per job.
]]
--@include record
--@include codes
--@include nowMs
--@include emit
--@include unqueueWaiting
--@include retention
--@include endCancelled
local CANCELLED, CANCEL_REQUESTED, ALREADY_FINISHED = 1, 2, 3
local waitKey, prioritizedKey, delayedKey, cancelledKey, metaKey, eventsKey, channel, jobPrefix =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local groupPrefix = KEYS[9]
local reason, by, maxLen, sharded = ARGV[1], ARGV[2], ARGV[3], ARGV[4] == '1'
if #ARGV - 4 > 1000 then return redis.error_reply('cancelJobs: more than 1000 ids in one call') end

local now = nowMs()
local _, _, keepCancelled = retention(metaKey)
local out = {}
for i = 5, #ARGV do
  local id = ARGV[i]
  local jobKey = jobPrefix .. id
  local v = redis.call('HMGET', jobKey, F.state, F.priority, F.group)
  local state = v[1]
  if not state then
    out[#out + 1] = NOT_FOUND; out[#out + 1] = 0
  elseif state == 'completed' or state == 'failed' or state == 'cancelled' then
    out[#out + 1] = ALREADY_FINISHED; out[#out + 1] = state
  elseif state == 'active' then
    redis.call('HSET', jobKey, F.cancelRequested, FLAG, F.cancelReason, reason, F.cancelRequestedBy, by)
    emit(eventsKey, maxLen, 'cancel-requested', id, {EV.cancelledBy, by, EV.reason, reason})
    local listeners
    if sharded then
      listeners = redis.call('SPUBLISH', channel, id)
    else
      listeners = redis.call('PUBLISH', channel, id)
    end
    out[#out + 1] = CANCEL_REQUESTED; out[#out + 1] = listeners
  else
    if state == 'waiting' then
      unqueueWaiting(waitKey, prioritizedKey, id, tonumber(v[2] or 0), groupPrefix, v[3])
    else
      redis.call('ZREM', delayedKey, id)
    end
    redis.call('HDEL', jobKey, F.dueAt)
    endCancelled(jobKey, cancelledKey, eventsKey, jobPrefix, maxLen, keepCancelled, id, now, reason, by, nil, nil,
      {F.cancelRequested, FLAG, F.cancelReason, reason, F.cancelRequestedBy, by})
    out[#out + 1] = CANCELLED; out[#out + 1] = 0
  end
end
return out
