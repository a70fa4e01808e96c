--[[
  Adds one job: waiting (immediate) or delayed; a job id that exists already adds nothing; a
  queue holding its maximum of waiting and delayed jobs (meta mw) refuses it.

  KEYS[1] jobq:{<q>}:job:<id>  HASH    the job's record
  KEYS[2] jobq:{<q>}:wait        LIST    waiting jobs of priority 0 (LPUSH in, RPOP out)
  KEYS[3] jobq:{<q>}:prioritized ZSET    other priorities; score = (1000 - priority) * 2^41 + sequence
  KEYS[4] jobq:{<q>}:delayed     ZSET    score = due ms (Redis clock)
  KEYS[5] jobq:{<q>}:marker      ZSET    wake-up marker, one member "0"
  KEYS[6] jobq:{<q>}:events      STREAM  capped event stream
  KEYS[7] jobq:{<q>}:seq         STRING  the queue's sequence counter (prioritized jobs)
  KEYS[8] jobq:{<q>}:meta        HASH    the queue's settings: field mw, the most waiting + delayed
  KEYS[9] jobq:{<q>}:g:          prefix of the groups' keys (include/groups.lua)
  Derived keys: the group keys of the job's group (field g), when it has one.

  ARGV[1] job id
  ARGV[2] delay in ms from now (Redis TIME); 0 = none
  ARGV[3] run-at time in ms since the epoch; 0 = none (a time in the past runs at once)
  ARGV[4] priority, -1000...1000
  ARGV[5] events stream cap (MAXLEN ~)
  ARGV[6...] the record's fields as name, value pairs (n, d, e, a, bo, to, ms, rc, rf, p, g)

  Returns {1, state} created, state "waiting" or "delayed"
          {0, state} the id exists already (dedup); nothing written
          {-11, held} QUEUE_FULL: the queue holds `held` waiting and delayed jobs, its maximum or
                     more; nothing written
          an error reply (WRONGTYPE, OOM) when a write failed partway: what was written is undone,
          so a job is added whole or not at all
  Events: "added" (to waiting) or "delayed", with the job name.
]]
--@include record
--@include codes
--@include nowMs
--@include addRecord
local jobKey, waitKey, prioritizedKey, delayedKey, markerKey, eventsKey, seqKey, metaKey, groupPrefix =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local id, delay, runAt, priority, maxLen = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]

local existing = redis.call('HGET', jobKey, F.state)
if existing then return {0, existing} end

local maxWaiting = tonumber(redis.call('HGET', metaKey, META.maxWaiting))
if maxWaiting then
  local held = redis.call('LLEN', waitKey) + redis.call('ZCARD', prioritizedKey) + redis.call('ZCARD', delayedKey)
    + tonumber(redis.call('GET', groupPrefix .. 'waiting') or 0)
  if held >= maxWaiting then return {QUEUE_FULL, held} end
end

local name, group = '', nil
local fields = {}
for i = 6, #ARGV, 2 do
  if ARGV[i] == F.name then name = ARGV[i + 1] elseif ARGV[i] == F.group then group = ARGV[i + 1] end
  fields[#fields + 1] = ARGV[i]
  fields[#fields + 1] = ARGV[i + 1]
end

local due = nil
local now
if runAt > 0 then
  now = nowMs()
  if runAt > now then due = runAt end
end

local q = {
  wait = waitKey, prioritized = prioritizedKey, delayed = delayedKey, marker = markerKey, events = eventsKey,
  seq = seqKey, groupPrefix = groupPrefix, maxLen = maxLen,
}
local ok, result = addRecord(q, jobKey, id, fields, due, delay, priority, group, now, nil, {EV.name, name})
if not ok then
  return redis.error_reply(type(result) == 'table' and result.err or tostring(result))
end
return {1, result}
