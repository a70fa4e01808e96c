--[[
  Removes a job that is not running: its record goes, an event stays.

  KEYS[1] jobq:{<q>}:job:<id>  HASH    the job's record
  KEYS[2] jobq:{<q>}:wait        LIST    waiting jobs of priority 0
  KEYS[3] jobq:{<q>}:prioritized ZSET    waiting jobs of other priorities
  KEYS[4] jobq:{<q>}:delayed     ZSET
  KEYS[5] jobq:{<q>}:completed   ZSET
  KEYS[6] jobq:{<q>}:failed      ZSET
  KEYS[7] jobq:{<q>}:cancelled   ZSET
  KEYS[8] jobq:{<q>}:events      STREAM

  ARGV[1] job id
  ARGV[2] events stream cap

  Returns {1, state}  removed; state = the state it was in
          {-4}        IS_ACTIVE: running jobs are cancelled, not removed; nothing changed
          {-1}        NOT_FOUND
  Events: "removed" with the previous state.
]]
--@include common
local id = ARGV[1]
local v = redis.call('HMGET', KEYS[1], 's', 'p')
local state = v[1]
if not state then return {NOT_FOUND} end
if state == 'active' then return {IS_ACTIVE} end
if state == 'waiting' then
  unqueueWaiting(KEYS[2], KEYS[3], id, tonumber(v[2] or 0))
else
  local sets = {delayed = KEYS[4], completed = KEYS[5], failed = KEYS[6], cancelled = KEYS[7]}
  if sets[state] then redis.call('ZREM', sets[state], id) end
end
redis.call('UNLINK', KEYS[1])
emit(KEYS[8], ARGV[2], 'removed', id, {'from', state})
return {1, state}
