--[[
  Removes the jobs with a given name from one non-active state, scanning at most ARGV[3] ids
  per call from a cursor, so a large queue takes many small calls.

  KEYS[1] jobq:{<q>}:<state>   LIST or ZSET  wait (LIST) | prioritized | delayed | completed |
                                             failed | cancelled | a group's line (g:w:<group>)
  KEYS[2] jobq:{<q>}:events    STREAM
  KEYS[3] jobq:{<q>}:job:      prefix of job records
  KEYS[4] jobq:{<q>}:g:        prefix of the groups' keys (include/groups.lua)
  Derived keys: jobq:{<q>}:job:<id> HASH of each job scanned.

  ARGV[1] job name
  ARGV[2] cursor: position to start scanning at (from the head of the list / lowest score)
  ARGV[3] most ids to scan (<= 1000)
  ARGV[4] events stream cap
  ARGV[5] the state's name, for the events
  ARGV[6] the group whose line KEYS[1] is; "" for the queue's own sets

  Returns {removed, nextCursor, remaining}: remaining = ids not scanned yet (0 = done).
  Events: "removed" per job.
]]
--@include record
--@include emit
--@include groups
local setKey, eventsKey, jobPrefix, groupPrefix = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local group = ARGV[6]
local cursor, batch = tonumber(ARGV[2]), tonumber(ARGV[3])
local isList = redis.call('TYPE', setKey).ok == 'list'
local ids
if isList then
  ids = redis.call('LRANGE', setKey, cursor, cursor + batch - 1)
else
  ids = redis.call('ZRANGE', setKey, cursor, cursor + batch - 1)
end
local removed = 0
for i = 1, #ids do
  local jobKey = jobPrefix .. ids[i]
  if redis.call('HGET', jobKey, F.name) == ARGV[1] then
    redis.call('UNLINK', jobKey)
    if isList then
      redis.call('LREM', setKey, 1, ids[i])
    elseif group ~= '' then
      unqueueGroup(groupPrefix, group, ids[i])
    else
      redis.call('ZREM', setKey, ids[i])
    end
    emit(eventsKey, ARGV[4], 'removed', ids[i], {EV.previousState, ARGV[5]})
    removed = removed + 1
  end
end
local nextCursor = cursor + #ids - removed
local size
if isList then size = redis.call('LLEN', setKey) else size = redis.call('ZCARD', setKey) end
local remaining = size - nextCursor
if remaining < 0 then remaining = 0 end
return {removed, nextCursor, remaining}
