--[[
  Taking the next job, shared by takeJob and finishJob (which hands back the next job in the
  same call). Returns a flat reply:
    {1, id, nextDue, {field, value, ...}}  the job, now active with the caller's lease token
    {0, nextDue}                           nothing runnable; nextDue = ms until the earliest
                                           delayed job is due, -1 when none is delayed
    {PAUSED}                               the queue is paused
    {LIMITED, waitMs, limit}               jobs wait, but a flow limit refuses a start now:
                                           waitMs until it may (-1: until a slot frees),
                                           limit = throttled | concurrency | rate | group
                                           (every group with waiting jobs is held by its own
                                           limits; waitMs then also covers the next delayed job;
                                           0, with the marker set, when held groups filled this
                                           take's checks and others wait to be checked)
  Jobs without a group go first (priorities above 0, the list, priorities below 0); then the
  group whose turn it is (groups.lua).
]]
--@include codes
--@include record
--@include priorityScore
--@include emit
--@include promoteDue
--@include queueMeta
--@include limitWait
--@include groups
-- `meta`: the caller's reading of the queue's settings (queueMeta), or nil to read them here.
-- `rearm`: true when the caller consumed the marker to get here (a fetcher woken by BZPOPMIN):
-- taking a job then re-arms it for the next idle fetcher. A finish handing back the next job
-- consumed nothing, so the marker is as the last add or take left it and needs no write.
local function takeNext(waitKey, prioritizedKey, activeKey, delayedKey, metaKey, markerKey, eventsKey, seqKey, jobPrefix,
                        rateKey, groupPrefix, token, leaseMs, workerId, maxLen, now, promoteBatch, meta, rearm)
  if meta == nil then meta = queueMeta(metaKey) end
  if meta.paused then
    redis.call('DEL', markerKey)
    return {PAUSED}
  end
  local _, nextDue = promoteDue(delayedKey, waitKey, prioritizedKey, seqKey, markerKey, eventsKey, jobPrefix, maxLen, now, promoteBatch,
    groupPrefix)
  local active
  if meta.concurrency or meta.rateCount or meta.throttledUntil then
    local waitMs, limit
    waitMs, limit, active = limitWait(meta, activeKey, rateKey, now)
    -- A limit binds only while jobs wait: an empty queue answers "empty" with its next due time.
    if waitMs and redis.call('LLEN', waitKey) == 0 and redis.call('ZCARD', prioritizedKey) == 0
        and tonumber(redis.call('GET', groupPrefix .. 'waiting') or 0) <= 0 then
      redis.call('DEL', markerKey)
      return {0, nextDue}
    end
    if waitMs then
      -- Fetchers sleep: on their timer (rate, throttle), or until a freed slot re-arms it. A
      -- finish that meets a timed limit leaves the marker set instead, so a sleeping fetcher
      -- comes to learn the wait and arms its timer.
      if rearm or waitMs < 0 then redis.call('DEL', markerKey) else redis.call('ZADD', markerKey, 0, '0') end
      return {LIMITED, waitMs, limit}
    end
  end
  -- An id without a record (deleted by hand) is dropped; a few in a row at most.
  for _ = 1, 10 do
    -- Priorities above 0 first, then the list (FIFO), then priorities below 0, then groups.
    local id, group, limitsOfGroup
    local prioritized = redis.call('ZCARD', prioritizedKey)
    if prioritized > 0 then
      local top = redis.call('ZRANGE', prioritizedKey, 0, 0, 'WITHSCORES')
      if tonumber(top[2]) < ZERO_SCORE then id = top[1] end
      if not id then id = redis.call('RPOP', waitKey) end
      if not id then id = top[1] end
      if id == top[1] then
        redis.call('ZREM', prioritizedKey, id)
        prioritized = prioritized - 1
      end
    else
      id = redis.call('RPOP', waitKey)
    end
    local moreGroups
    if not id then id, group, limitsOfGroup = takeFromGroups(groupPrefix, seqKey, meta, now) end
    if not id and type(group) == 'boolean' then moreGroups, group = group, nil end
    if not id and moreGroups then
      -- Held groups filled this take's checks and ready ones remain: come back at once (each
      -- call moves 50 held groups out of the rotation, so this ends).
      redis.call('ZADD', markerKey, 0, '0')
      return {LIMITED, 0, 'group'}
    end
    if not id then
      -- Nothing to wake anyone for: the caller re-arms its timer from nextDue (or from the
      -- first group held by time; a group held for a slot rejoins with a finish's marker).
      redis.call('DEL', markerKey)
      local held = groupsHeld(groupPrefix, now)
      if held then
        if held < 0 or (nextDue >= 0 and nextDue < held) then held = nextDue end
        return {LIMITED, held, 'group'}
      end
      return {0, nextDue}
    end
    local jobKey = jobPrefix .. id
    local flat = redis.call('HGETALL', jobKey)
    if #flat > 0 then
      local attempt = 1
      for i = 1, #flat, 2 do
        if flat[i] == F.attemptsMade then attempt = tonumber(flat[i + 1]) + 1 end
      end
      redis.call('HSET', jobKey, F.state, 'active', F.attemptsMade, attempt, F.startedAt, now, F.worker, workerId, F.execution, token)
      redis.call('ZADD', activeKey, now + leaseMs, id)
      -- The log is trimmed by every take (limitWait), so it holds at most rateCount starts;
      -- removing the limit deletes it (setLimits).
      if meta.rateCount and meta.rateWindow then redis.call('RPUSH', rateKey, now) end
      if group then groupStarted(groupPrefix, group, limitsOfGroup, id, token, now) end
      -- Re-arm the marker, so another idle fetcher wakes while jobs may remain (one that finds
      -- none clears it with its empty take: one spare round trip beats counting here). Not when
      -- this take filled the concurrency cap: the next finish or reap re-arms it.
      if rearm and not (active and active + 1 >= meta.concurrency) then
        redis.call('ZADD', markerKey, 0, '0')
      end
      emit(eventsKey, maxLen, 'active', id, {EV.attempt, attempt, EV.worker, workerId})
      local seen = {}
      for i = 1, #flat, 2 do
        local f = flat[i]
        if f == F.state then flat[i + 1] = 'active'
        elseif f == F.attemptsMade then flat[i + 1] = tostring(attempt)
        elseif f == F.startedAt then flat[i + 1] = tostring(now)
        elseif f == F.worker then flat[i + 1] = workerId
        elseif f == F.execution then flat[i + 1] = token end
        seen[f] = true
      end
      if not seen[F.attemptsMade] then flat[#flat + 1] = F.attemptsMade; flat[#flat + 1] = tostring(attempt) end
      if not seen[F.startedAt] then flat[#flat + 1] = F.startedAt; flat[#flat + 1] = tostring(now) end
      if not seen[F.worker] then flat[#flat + 1] = F.worker; flat[#flat + 1] = workerId end
      if not seen[F.execution] then flat[#flat + 1] = F.execution; flat[#flat + 1] = token end
      return {1, id, nextDue, flat}
    end
  end
  return {0, nextDue}
end
