--[[
  Removes jobs that are not running, up to 1,000 ids in one call: each record goes, an event
  stays.

  KEYS[1] jobq:{<q>}:wait        LIST    waiting jobs of priority 0
  KEYS[2] jobq:{<q>}:prioritized ZSET    waiting jobs of other priorities
  KEYS[3] jobq:{<q>}:delayed     ZSET
  KEYS[4] jobq:{<q>}:completed   ZSET
  KEYS[5] jobq:{<q>}:failed      ZSET
  KEYS[6] jobq:{<q>}:cancelled   ZSET
  KEYS[7] jobq:{<q>}:events      STREAM
  KEYS[8] jobq:{<q>}:job:        prefix of job records
  KEYS[9] jobq:{<q>}:g:          prefix of the groups' keys (include/groups.lua)
  Derived keys: jobq:{<q>}:job:<id> HASH of each id in ARGV; the group keys of each waiting
  job's group.

  ARGV[1] events stream cap
  ARGV[2], ARGV[3], ... job ids (at most 1,000)

  Returns a flat list, two items per id, in order:
          1, state         removed; state = the state it was in
          -4, ''           IS_ACTIVE: running jobs are cancelled, not removed; nothing changed
          -1, ''           NOT_FOUND
  Events: "removed" with the previous state, per job removed.
]]
--@include record
--@include codes
--@include emit
--@include unqueueWaiting
local waitKey, prioritizedKey, eventsKey, jobPrefix, groupPrefix = KEYS[1], KEYS[2], KEYS[7], KEYS[8], KEYS[9]
local sets = {delayed = KEYS[3], completed = KEYS[4], failed = KEYS[5], cancelled = KEYS[6]}
local maxLen = ARGV[1]
if #ARGV - 1 > 1000 then return redis.error_reply('removeJobs: more than 1000 ids in one call') end
local out = {}
for i = 2, #ARGV do
  local id = ARGV[i]
  local jobKey = jobPrefix .. id
  local v = redis.call('HMGET', jobKey, F.state, F.priority, F.group)
  local state = v[1]
  if not state then
    out[#out + 1] = NOT_FOUND; out[#out + 1] = ''
  elseif state == 'active' then
    out[#out + 1] = IS_ACTIVE; out[#out + 1] = ''
  else
    if state == 'waiting' then
      unqueueWaiting(waitKey, prioritizedKey, id, tonumber(v[2] or 0), groupPrefix, v[3])
    elseif sets[state] then
      redis.call('ZREM', sets[state], id)
    end
    redis.call('UNLINK', jobKey)
    emit(eventsKey, maxLen, 'removed', id, {EV.previousState, state})
    out[#out + 1] = 1; out[#out + 1] = state
  end
end
return out
