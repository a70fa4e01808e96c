--[[
  Adds many jobs in one call (addBulk), each exactly as addJob-9 adds one: waiting or delayed;
  an id that exists already (or came earlier in the same call) adds nothing; a queue holding
  its maximum of waiting and delayed jobs (meta mw) refuses the job that would pass it. Each job
  stands alone: one whose write fails is undone whole and the others are still added.

  KEYS[1] jobq:{<q>}:job:        prefix of job records
  KEYS[2] jobq:{<q>}:wait        LIST    waiting jobs of priority 0 (LPUSH in, RPOP out)
  KEYS[3] jobq:{<q>}:prioritized ZSET    other priorities; score = (1000 - priority) * 2^41 + sequence
  KEYS[4] jobq:{<q>}:delayed     ZSET    score = due ms (Redis clock)
  KEYS[5] jobq:{<q>}:marker      ZSET    wake-up marker, one member "0"
  KEYS[6] jobq:{<q>}:events      STREAM  capped event stream
  KEYS[7] jobq:{<q>}:seq         STRING  the queue's sequence counter (prioritized jobs)
  KEYS[8] jobq:{<q>}:meta        HASH    the queue's settings: field mw, the most waiting + delayed
  KEYS[9] jobq:{<q>}:g:          prefix of the groups' keys (include/groups.lua)
  Derived keys: jobq:{<q>}:job:<id> of each job; the group keys of the jobs' groups.

  ARGV[1] events stream cap (MAXLEN ~)
  ARGV[2] how many jobs, m (at most 1,000)
  ARGV[3], ARGV[4], ... m jobs, each: job id, delay in ms from now (0 = none), run-at time in ms
          since the epoch (0 = none; a time in the past runs at once), priority (-1000...1000),
          how many record fields (f), then f name, value pairs (n, d, e, a, bo, to, ms, rc, rf,
          p, g)

  Returns a flat list, two items per job, in order:
          1, state   created, state "waiting" or "delayed"
          0, state   the id exists already (dedup); nothing written
          -11, held  QUEUE_FULL: the queue holds `held` waiting and delayed jobs, its maximum or
                     more; nothing written
          2, error   a write failed (WRONGTYPE, OOM; `error` is Redis's message): what was
                     written for this job is undone; after an OOM every later job of the
                     call gets the same error, unwritten
  Events: "added" (to waiting) or "delayed" per job created, with the job name.
]]
--@include record
--@include codes
--@include nowMs
--@include addRecord
local jobPrefix, waitKey, prioritizedKey, delayedKey, markerKey, eventsKey, seqKey, metaKey, groupPrefix =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local maxLen, m = ARGV[1], tonumber(ARGV[2])
if m > 1000 then return redis.error_reply('addJobs: more than 1000 jobs in one call') end
do
  local at = 3
  for _ = 1, m do at = at + 5 + 2 * tonumber(ARGV[at + 4]) end
  if at ~= #ARGV + 1 then return redis.error_reply('addJobs: the jobs do not match the arguments') end
end

local now = nowMs()
local maxWaiting = tonumber(redis.call('HGET', metaKey, META.maxWaiting))
local held
if maxWaiting then
  held = redis.call('LLEN', waitKey) + redis.call('ZCARD', prioritizedKey) + redis.call('ZCARD', delayedKey)
    + tonumber(redis.call('GET', groupPrefix .. 'waiting') or 0)
end
local q = {
  wait = waitKey, prioritized = prioritizedKey, delayed = delayedKey, marker = markerKey, events = eventsKey,
  seq = seqKey, groupPrefix = groupPrefix, maxLen = maxLen,
}

local out = {}
local at = 3
-- Once a write is refused for memory, the rest of the call is refused with it: the undo that
-- follows a refusal is itself a write, after which Redis would let this script write past
-- maxmemory.
local full = nil
for _ = 1, m do
  local id, delay, runAt, priority, f = ARGV[at], tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2]), tonumber(ARGV[at + 3]),
    tonumber(ARGV[at + 4])
  local jobKey = jobPrefix .. id
  local existing = not full and redis.call('HGET', jobKey, F.state)
  if full then
    out[#out + 1] = 2; out[#out + 1] = full
  elseif existing then
    out[#out + 1] = 0; out[#out + 1] = existing
  elseif maxWaiting and held >= maxWaiting then
    out[#out + 1] = QUEUE_FULL; out[#out + 1] = held
  else
    local name, group = '', nil
    local fields = {}
    for i = at + 5, at + 4 + 2 * f, 2 do
      if ARGV[i] == F.name then name = ARGV[i + 1] elseif ARGV[i] == F.group then group = ARGV[i + 1] end
      fields[#fields + 1] = ARGV[i]
      fields[#fields + 1] = ARGV[i + 1]
    end
    local due = nil
    if runAt > now then due = runAt end
    local ok, result = addRecord(q, jobKey, id, fields, due, delay, priority, group, now, nil, {EV.name, name})
    if ok then
      out[#out + 1] = 1; out[#out + 1] = result
      if held then held = held + 1 end
    else
      local message = type(result) == 'table' and (result.err or '') or tostring(result)
      if string.sub(message, 1, 3) == 'OOM' then full = message end
      out[#out + 1] = 2; out[#out + 1] = message
    end
  end
  at = at + 5 + 2 * f
end
return out
