--[[
  Removes a job that is not running: its record goes, an event stays.

  KEYS[1] jobq:{<q>}:job:<id>  HASH    the job's record
  KEYS[2] jobq:{<q>}:wait      ZSET
  KEYS[3] jobq:{<q>}:delayed   ZSET
  KEYS[4] jobq:{<q>}:completed ZSET
  KEYS[5] jobq:{<q>}:failed    ZSET
  KEYS[6] jobq:{<q>}:cancelled ZSET
  KEYS[7] jobq:{<q>}:events    STREAM

  ARGV[1] job id
  ARGV[2] events stream cap

  Returns {1, state}  removed; state = the state it was in
          {-4}        IS_ACTIVE: running jobs are cancelled, not removed; nothing changed
          {-1}        NOT_FOUND
  Events: "removed" with the previous state.
]]
--@include common
local id = ARGV[1]
local state = redis.call('HGET', KEYS[1], 's')
if not state then return {NOT_FOUND} end
if state == 'active' then return {IS_ACTIVE} end
local sets = {waiting = KEYS[2], delayed = KEYS[3], completed = KEYS[4], failed = KEYS[5], cancelled = KEYS[6]}
if sets[state] then redis.call('ZREM', sets[state], id) end
redis.call('UNLINK', KEYS[1])
emit(KEYS[7], ARGV[2], 'removed', id, {'from', state})
return {1, state}
