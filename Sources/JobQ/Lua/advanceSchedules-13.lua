--[[
  Advances schedules by one step each, the only way a tick becomes a job: a step whose schedule
  still has the version and next tick the caller computed from adds the jobs of the ticks given
  (ids made from the schedule id and each tick's time, so a repeat or a racing scheduler adds
  nothing twice), records the skipped ones, and moves the schedule to its following tick. A step
  that lost the race changes nothing. Each step stands alone: one that fails leaves the others
  applied, as separate calls would.

  KEYS[1]  jobq:{<q>}:s:h:        prefix of the schedules' hashes (SCHED fields)
  KEYS[2]  jobq:{<q>}:s:due       ZSET    schedules to advance; score = when (ms, Redis clock)
  KEYS[3]  jobq:{<q>}:job:        prefix of job records
  KEYS[4]  jobq:{<q>}:wait        LIST    waiting jobs of priority 0
  KEYS[5]  jobq:{<q>}:prioritized ZSET    waiting jobs of other priorities
  KEYS[6]  jobq:{<q>}:delayed     ZSET    delayed jobs
  KEYS[7]  jobq:{<q>}:marker      ZSET    wake-up marker
  KEYS[8]  jobq:{<q>}:events      STREAM  capped event stream
  KEYS[9]  jobq:{<q>}:seq         STRING  the queue's sequence counter
  KEYS[10] jobq:{<q>}:meta        HASH    the queue's settings (mw, retention)
  KEYS[11] jobq:{<q>}:g:          prefix of the groups' keys (include/groups.lua)
  KEYS[12] jobq:{<q>}:cancelled   ZSET    cancelled records
  KEYS[13] jobq:{<q>}:cancel      channel (pub/sub; sharded in cluster mode)
  Derived keys: jobq:{<q>}:s:h:<id> of each schedule; jobq:{<q>}:job:<id> of each tick's job
  and of each schedule's previous one; records trimmed by retention; the group keys of the
  jobs' groups.

  ARGV[1]  events stream cap (MAXLEN ~)
  ARGV[2]  '1' = publish with SPUBLISH (cluster), else PUBLISH
  ARGV[3]  how many steps, m (at most 1,000; at most 1,000 ticks in all)
  ARGV[4], ARGV[5], ... m steps, each: schedule id, the version the caller read, the next tick
           the caller read (ms), the next tick after this step (ms; 0 = none ever again), when
           to advance for that tick (ms, Redis clock), the jobs' priority (-1000...1000), ticks
           skipped by the misfire policy in this step, the first and the last of them (ms, or
           0), how many ticks to add (n), how many record fields (f); then n triples (tick ms,
           job id, due ms) and f name, value pairs of the jobs' record fields (n, d, e, a, bo,
           to, ms, rc, rf, g)

  Returns a flat list, three items per step, in order:
          1, added, skipped   applied: added = jobs added, skipped = ticks skipped in all
                              (misfire, overlap, a full queue)
          0, 0, 0             stale: the schedule changed, was paused or was advanced by
                              another caller; nothing written for it
          -1, 0, 0            NOT_FOUND: no such schedule (its entry in s:due is dropped)
          2, error, 0         a write failed (WRONGTYPE, OOM; `error` is Redis's message): the
                              job being added is undone and the schedule is not advanced (a
                              repeat adds the ticks already added nothing twice); after an OOM
                              every later step gets the same error, unwritten
  Side effects: PUBLISH/SPUBLISH of a previous job's id on KEYS[13] when the overlap policy
          cancels it while it runs.
  Events: "scheduled" per job added (with its state), "skipped" (reason misfire, overlap or
          queueFull, count, first and last tick) per schedule and reason, and what cancelling a
          previous run emits ("cancelled" or "cancel-requested").
]]
--@include record
--@include codes
--@include nowMs
--@include emit
--@include addRecord
--@include unqueueWaiting
--@include retention
--@include endCancelled
local schedulePrefix, dueKey, jobPrefix, waitKey, prioritizedKey, delayedKey, markerKey, eventsKey, seqKey, metaKey =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10]
local groupPrefix, cancelledKey, channel = KEYS[11], KEYS[12], KEYS[13]
local maxLen, sharded, m = ARGV[1], ARGV[2] == '1', tonumber(ARGV[3])
if m > 1000 then return redis.error_reply('advanceSchedules: more than 1000 steps in one call') end
do
  local ticks, at = 0, 4
  for _ = 1, m do
    local n, f = tonumber(ARGV[at + 9]), tonumber(ARGV[at + 10])
    ticks = ticks + n
    at = at + 11 + 3 * n + 2 * f
  end
  if ticks > 1000 then return redis.error_reply('advanceSchedules: more than 1000 ticks in one call') end
  if at ~= #ARGV + 1 then return redis.error_reply('advanceSchedules: the steps do not match the arguments') end
end

local now = nowMs()
local maxWaiting = tonumber(redis.call('HGET', metaKey, META.maxWaiting))
local q = {
  wait = waitKey, prioritized = prioritizedKey, delayed = delayedKey, marker = markerKey, events = eventsKey,
  seq = seqKey, groupPrefix = groupPrefix, maxLen = maxLen,
}

-- One step from ARGV[at]: returns its three reply items (or raises when a write failed).
local function advance(at)
  local id, version, expected, nextTick, advanceAt = ARGV[at], ARGV[at + 1], ARGV[at + 2], ARGV[at + 3], ARGV[at + 4]
  local priority, misfired, firstMissed, lastMissed = tonumber(ARGV[at + 5]), tonumber(ARGV[at + 6]), ARGV[at + 7], ARGV[at + 8]
  local n, f = tonumber(ARGV[at + 9]), tonumber(ARGV[at + 10])
  local tickAt, fieldAt = at + 11, at + 11 + 3 * n
  local scheduleKey = schedulePrefix .. id

  local s = redis.call('HMGET', scheduleKey, SCHED.version, SCHED.nextTick, SCHED.paused, SCHED.overlap,
    SCHED.pendingJob, SCHED.pendingTick, SCHED.fired, SCHED.skipped)
  if not s[1] then
    redis.call('ZREM', dueKey, id)
    return NOT_FOUND, 0, 0
  end
  if s[1] ~= version or s[2] ~= expected or s[3] then return 0, 0, 0 end

  local fields, name, group = {}, '', nil
  for i = fieldAt, fieldAt + 2 * f - 1, 2 do
    if ARGV[i] == F.name then name = ARGV[i + 1] elseif ARGV[i] == F.group then group = ARGV[i + 1] end
    fields[#fields + 1] = ARGV[i]
    fields[#fields + 1] = ARGV[i + 1]
  end

  local skips = {}
  local function skip(reason, count, first, last)
    if count > 0 then skips[#skips + 1] = {reason, count, first, last} end
  end
  skip('misfire', misfired, firstMissed, lastMissed)

  local count = n
  local overlap, previous = s[4] or 'allow', s[5]
  if overlap ~= 'allow' and count > 0 and previous then
    local p = redis.call('HMGET', jobPrefix .. previous, F.state, F.priority, F.group)
    local state = p[1]
    if state == 'waiting' or state == 'delayed' or state == 'active' then
      if overlap == 'skipIfRunning' then
        skip('overlap', count, ARGV[tickAt], ARGV[tickAt + 3 * (n - 1)])
        count = 0
      elseif state == 'active' then
        local why = 'the next tick of schedule ' .. id .. ' came while it ran'
        local previousKey = jobPrefix .. previous
        if redis.call('HEXISTS', previousKey, F.cancelRequested) == 0 then
          redis.call('HSET', previousKey, F.cancelRequested, FLAG, F.cancelReason, why, F.cancelRequestedBy, 'schedule ' .. id)
          emit(eventsKey, maxLen, 'cancel-requested', previous, {EV.cancelledBy, 'schedule ' .. id, EV.reason, why})
          redis.call(sharded and 'SPUBLISH' or 'PUBLISH', channel, previous)
        end
      else
        local why = 'the next tick of schedule ' .. id .. ' came before it started'
        if state == 'waiting' then
          unqueueWaiting(waitKey, prioritizedKey, previous, tonumber(p[2] or 0), groupPrefix, p[3])
        else
          redis.call('ZREM', delayedKey, previous)
        end
        redis.call('HDEL', jobPrefix .. previous, F.dueAt)
        local _, _, keepCancelled = retention(metaKey)
        endCancelled(jobPrefix .. previous, cancelledKey, eventsKey, jobPrefix, maxLen, keepCancelled, previous, now, why,
          'schedule ' .. id, nil, nil, {F.cancelRequested, FLAG, F.cancelReason, why, F.cancelRequestedBy, 'schedule ' .. id})
      end
    end
  end

  if maxWaiting and count > 0 then
    local held = redis.call('LLEN', waitKey) + redis.call('ZCARD', prioritizedKey) + redis.call('ZCARD', delayedKey)
      + tonumber(redis.call('GET', groupPrefix .. 'waiting') or 0)
    local room = maxWaiting - held
    if room < 0 then room = 0 end
    if room < count then
      skip('queueFull', count - room, ARGV[tickAt + 3 * room], ARGV[tickAt + 3 * (count - 1)])
      count = room
    end
  end

  -- The step's last tick becomes the pending run; the run before it is the one before that in
  -- this step (when it made several), else the pending run of the step before.
  local added, lastJob, lastTick, beforeJob, beforeTick = 0, nil, nil, nil, nil
  for i = 1, count do
    local base = tickAt + 3 * (i - 1)
    local tick, jobId, due = ARGV[base], ARGV[base + 1], tonumber(ARGV[base + 2])
    local jobKey = jobPrefix .. jobId
    if redis.call('EXISTS', jobKey) == 0 then
      local record = {F.schedule, id, F.tick, tick}
      for j = 1, #fields do record[#record + 1] = fields[j] end
      local ok, failure = addRecord(q, jobKey, jobId, record, due > now and due or nil, 0, priority, group, now, 'scheduled',
        {EV.name, name, EV.schedule, id, EV.tick, tick})
      if not ok then error(failure) end
      added = added + 1
    end
    beforeJob, beforeTick = lastJob, lastTick
    lastJob, lastTick = jobId, tick
  end

  local skipped = 0
  for i = 1, #skips do
    local k = skips[i]
    skipped = skipped + k[2]
    emit(eventsKey, maxLen, 'skipped', '', {EV.schedule, id, EV.reason, k[1], EV.count, k[2], EV.tick, k[3], EV.lastTick, k[4]})
  end

  local update = {'HSET', scheduleKey, SCHED.nextTick, nextTick, SCHED.updatedAt, now}
  if lastJob then
    if beforeJob then
      update[#update + 1] = SCHED.lastJob; update[#update + 1] = beforeJob
      update[#update + 1] = SCHED.lastTick; update[#update + 1] = beforeTick
    elseif previous and previous ~= lastJob then
      update[#update + 1] = SCHED.lastJob; update[#update + 1] = previous
      update[#update + 1] = SCHED.lastTick; update[#update + 1] = s[6]
    end
    update[#update + 1] = SCHED.pendingJob; update[#update + 1] = lastJob
    update[#update + 1] = SCHED.pendingTick; update[#update + 1] = lastTick
  end
  if added > 0 then
    update[#update + 1] = SCHED.fired; update[#update + 1] = (tonumber(s[7]) or 0) + added
  end
  if skipped > 0 then
    update[#update + 1] = SCHED.skipped; update[#update + 1] = (tonumber(s[8]) or 0) + skipped
    update[#update + 1] = SCHED.skipReason; update[#update + 1] = skips[#skips][1]
    update[#update + 1] = SCHED.skippedAt; update[#update + 1] = now
  end
  redis.call(unpack(update))
  if nextTick == '0' then
    redis.call('ZREM', dueKey, id)
  else
    redis.call('ZADD', dueKey, advanceAt, id)
  end
  return 1, added, skipped
end

local out = {}
local at = 4
-- Once a write is refused for memory, the later steps are refused with it: the undo that
-- follows a refusal is itself a write, after which Redis would let this script write past
-- maxmemory.
local full = nil
for _ = 1, m do
  local n, f = tonumber(ARGV[at + 9]), tonumber(ARGV[at + 10])
  local ok, code, added, skipped = false, full, 0, 0
  if not full then ok, code, added, skipped = pcall(advance, at) end
  if ok then
    out[#out + 1] = code; out[#out + 1] = added; out[#out + 1] = skipped
  else
    local message = type(code) == 'table' and (code.err or '') or tostring(code)
    if string.sub(message, 1, 3) == 'OOM' then full = message end
    out[#out + 1] = 2; out[#out + 1] = message; out[#out + 1] = 0
  end
  at = at + 11 + 3 * n + 2 * f
end
return out
