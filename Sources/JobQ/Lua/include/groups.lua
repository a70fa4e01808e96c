--[[
  Groups (docs/flow-control.md): a job added with a group (record field g) waits in its
  group's own ZSET, not in the queue's wait list, and takes rotate over the groups that have a
  job ready. Every key is derived from the queue's group prefix P = jobq:{<q>}:g: (a KEY):
    P..'ready'    ZSET    groups whose next job may start; score = turn (the queue's sequence),
                          so the lowest is the group that waited longest for its turn
    P..'later'    ZSET    groups held by time (their rate or throttle); score = ms they are free
    P..'blocked'  SET     groups held until a slot of theirs frees or they are resumed
    P..'waiting'  STRING  waiting jobs in all groups (backpressure and counts)
    P..'known'    SET     groups that have waiting or active jobs or settings of their own
    P..'w:'..g    ZSET    the group's waiting jobs; score = priorityScore (priority, then FIFO)
    P..'a:'..g    SET     the group's active job ids
    P..'m:'..g    HASH    the group's settings: paused, cc, rn, rw (overrides; -1 = no limit),
                          tu (throttled until, ms)
    P..'r:'..g    ZSET    the group's rate log; expires one window after its last start
  A group with waiting jobs is in exactly one of ready, later and blocked; a take checks a
  ready group's limits before it takes from it, and moves a held group out of ready, so a take
  costs O(log groups).
]]
--@include record
--@include priorityScore
--@include rateWait
-- The per-group kinds of key: prefix .. kind .. group.
local GROUP_WAIT, GROUP_ACTIVE, GROUP_SETTINGS, GROUP_RATE = 'w:', 'a:', 'm:', 'r:'
local function groupKey(prefix, kind, group) return prefix .. kind .. group end

-- The group's limits in force: its own settings, else the queue's group defaults (meta).
local function groupLimits(prefix, group, meta)
  local v = redis.call('HMGET', groupKey(prefix, GROUP_SETTINGS, group), META.paused, META.concurrency, META.rateCount,
    META.rateWindow, META.throttledUntil)
  local concurrency = tonumber(v[2])
  if concurrency == nil then concurrency = meta.groupConcurrency elseif concurrency < 0 then concurrency = nil end
  local rateCount, rateWindow = tonumber(v[3]), tonumber(v[4])
  if rateCount == nil then
    rateCount, rateWindow = meta.groupRateCount, meta.groupRateWindow
  elseif rateCount < 0 then
    rateCount, rateWindow = nil, nil
  end
  return {paused = v[1] == FLAG, concurrency = concurrency, rateCount = rateCount, rateWindow = rateWindow,
          throttledUntil = tonumber(v[5])}
end

-- Whether the group's limits let a job of it start now: nil, or the wait in ms (-1: until a
-- slot of the group frees or it is resumed) and which limit holds it. Under a concurrency
-- limit, it keeps the group's running count in limits.active.
local function groupLimitWait(limits, prefix, group, now)
  if limits.paused then return -1, 'paused' end
  if limits.throttledUntil then
    if limits.throttledUntil > now then return limits.throttledUntil - now, 'throttled' end
    -- A throttle that ended goes, so the group's settings do not outlive it.
    redis.call('HDEL', groupKey(prefix, GROUP_SETTINGS, group), META.throttledUntil)
    limits.throttledUntil = nil
  end
  if limits.concurrency then
    limits.active = redis.call('SCARD', groupKey(prefix, GROUP_ACTIVE, group))
    if limits.active >= limits.concurrency then return -1, 'concurrency' end
  end
  if limits.rateCount and limits.rateWindow then
    local wait = rateWait(groupKey(prefix, GROUP_RATE, group), limits.rateCount, limits.rateWindow, now)
    if wait then return wait, 'rate' end
  end
  return nil
end

-- Puts a group with waiting jobs at the end of the rotation unless a limit holds it. Returns
-- true when it joined.
local function groupWake(prefix, seqKey, group)
  if redis.call('ZSCORE', prefix .. 'later', group) or redis.call('SISMEMBER', prefix .. 'blocked', group) == 1 then
    return false
  end
  if redis.call('ZSCORE', prefix .. 'ready', group) then return false end
  redis.call('ZADD', prefix .. 'ready', redis.call('INCR', seqKey), group)
  return true
end

-- Drops the group from the set of known groups once nothing of it is left.
local function groupForget(prefix, group)
  if redis.call('ZCARD', groupKey(prefix, GROUP_WAIT, group)) == 0 and redis.call('SCARD', groupKey(prefix, GROUP_ACTIVE, group)) == 0
      and redis.call('EXISTS', groupKey(prefix, GROUP_SETTINGS, group)) == 0 then
    redis.call('SREM', prefix .. 'known', group)
    redis.call('SREM', prefix .. 'blocked', group)
  end
end

-- A job into its group's line (score from priorityScore); arms the marker when the group
-- joins the rotation.
local function enqueueGroup(prefix, seqKey, markerKey, group, jobId, score)
  if redis.call('ZADD', groupKey(prefix, GROUP_WAIT, group), score, jobId) == 1 then redis.call('INCR', prefix .. 'waiting') end
  redis.call('SADD', prefix .. 'known', group)
  if groupWake(prefix, seqKey, group) then redis.call('ZADD', markerKey, 0, '0') end
end

-- A waiting job out of its group's line (cancel, remove).
local function unqueueGroup(prefix, group, jobId)
  local waitKey = groupKey(prefix, GROUP_WAIT, group)
  if redis.call('ZREM', waitKey, jobId) == 1 then redis.call('DECR', prefix .. 'waiting') end
  if redis.call('ZCARD', waitKey) == 0 then
    redis.call('ZREM', prefix .. 'ready', group)
    redis.call('ZREM', prefix .. 'later', group)
    groupForget(prefix, group)
  end
end

-- A run of the group ended (finish, reap): its slot frees, and a group held for a slot is back
-- in the rotation. Returns true when it rejoined.
local function groupRelease(prefix, seqKey, group, jobId)
  redis.call('SREM', groupKey(prefix, GROUP_ACTIVE, group), jobId)
  local woke = false
  if redis.call('SISMEMBER', prefix .. 'blocked', group) == 1
      and redis.call('HGET', groupKey(prefix, GROUP_SETTINGS, group), META.paused) ~= FLAG then
    redis.call('SREM', prefix .. 'blocked', group)
    if redis.call('ZCARD', groupKey(prefix, GROUP_WAIT, group)) > 0 then woke = groupWake(prefix, seqKey, group) end
  end
  groupForget(prefix, group)
  return woke
end

-- Holds the group until `untilMs` (a handler's RateLimited for its group).
local function groupThrottle(prefix, group, untilMs)
  local metaKey = groupKey(prefix, GROUP_SETTINGS, group)
  local current = tonumber(redis.call('HGET', metaKey, META.throttledUntil))
  if not current or current < untilMs then redis.call('HSET', metaKey, META.throttledUntil, untilMs) end
  redis.call('SADD', prefix .. 'known', group)
  if redis.call('ZREM', prefix .. 'ready', group) == 1 or redis.call('ZSCORE', prefix .. 'later', group) then
    redis.call('ZADD', prefix .. 'later', 'GT', untilMs, group)
  end
end

-- Every held group back in the rotation (a limit changed): the next takes check each again.
local function groupsRecheck(prefix, seqKey)
  local later = redis.call('ZRANGE', prefix .. 'later', 0, -1)
  redis.call('DEL', prefix .. 'later')
  for i = 1, #later do groupWake(prefix, seqKey, later[i]) end
  local blocked = redis.call('SMEMBERS', prefix .. 'blocked')
  for i = 1, #blocked do
    local group = blocked[i]
    if redis.call('HGET', groupKey(prefix, GROUP_SETTINGS, group), META.paused) ~= FLAG then
      redis.call('SREM', prefix .. 'blocked', group)
      if redis.call('ZCARD', groupKey(prefix, GROUP_WAIT, group)) > 0 then groupWake(prefix, seqKey, group) end
    end
  end
end

-- The next job of the group whose turn it is, or nil: groups whose time came rejoin the
-- rotation first; a ready group that a limit holds moves to later or blocked (at most 50 per
-- call). Returns id, group, its limits; the group goes to the end of the rotation. With no job,
-- returns nil, true when ready groups are left unchecked (come back at once).
local function takeFromGroups(prefix, seqKey, meta, now)
  local readyKey, laterKey = prefix .. 'ready', prefix .. 'later'
  local due = redis.call('ZRANGEBYSCORE', laterKey, '-inf', now, 'LIMIT', 0, 100)
  for i = 1, #due do
    redis.call('ZREM', laterKey, due[i])
    groupWake(prefix, seqKey, due[i])
  end
  for _ = 1, 50 do
    local group = redis.call('ZRANGE', readyKey, 0, 0)[1]
    if not group then return nil end
    local limits = groupLimits(prefix, group, meta)
    local wait = groupLimitWait(limits, prefix, group, now)
    if wait then
      redis.call('ZREM', readyKey, group)
      if wait < 0 then redis.call('SADD', prefix .. 'blocked', group) else redis.call('ZADD', laterKey, now + wait, group) end
    else
      local waitKey = groupKey(prefix, GROUP_WAIT, group)
      local popped = redis.call('ZPOPMIN', waitKey)
      if popped[1] then
        redis.call('DECR', prefix .. 'waiting')
        if redis.call('ZCARD', waitKey) == 0 then
          redis.call('ZREM', readyKey, group)
        else
          redis.call('ZADD', readyKey, 'XX', redis.call('INCR', seqKey), group)
        end
        return popped[1], group, limits
      end
      redis.call('ZREM', readyKey, group)
    end
  end
  return nil, redis.call('EXISTS', readyKey) == 1
end

-- A job of the group started under `token`: its slot and its start in the group's rate log. A
-- group that this start filled leaves the rotation until a slot frees.
local function groupStarted(prefix, group, limits, jobId, token, now)
  redis.call('SADD', groupKey(prefix, GROUP_ACTIVE, group), jobId)
  if limits.rateCount and limits.rateWindow then
    local rateKey = groupKey(prefix, GROUP_RATE, group)
    redis.call('RPUSH', rateKey, now)
    redis.call('PEXPIRE', rateKey, limits.rateWindow)
  end
  -- limits.active: the count its take checked, before this start.
  if limits.concurrency and limits.active + 1 >= limits.concurrency and redis.call('ZREM', prefix .. 'ready', group) == 1 then
    redis.call('SADD', prefix .. 'blocked', group)
  end
end

-- When no ready group is left but groups hold waiting jobs: ms until the first held by time
-- is free, -1 when every one waits for a slot or a resume, nil when no group job waits.
local function groupsHeld(prefix, now)
  if tonumber(redis.call('GET', prefix .. 'waiting') or 0) <= 0 then return nil end
  local first = redis.call('ZRANGE', prefix .. 'later', 0, 0, 'WITHSCORES')
  if first[2] then return math.max(1, tonumber(first[2]) - now) end
  return -1
end
