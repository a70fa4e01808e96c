--[[
  Records a running job's progress (owner only: checks the lease token).

  KEYS[1] jobq:{<q>}:job:<id>  HASH    fields pp (percent), pm (message)
  KEYS[2] jobq:{<q>}:events    STREAM

  ARGV[1] job id
  ARGV[2] lease token
  ARGV[3] percent, 0...100
  ARGV[4] message ("" = none)
  ARGV[5] events stream cap

  Returns {1, cancelRequested (0/1)}, {-2} LEASE_LOST, {-1} NOT_FOUND.
  Events: "progress" (percent, message).
]]
--@include record
--@include codes
--@include emit
local v = redis.call('HMGET', KEYS[1], F.state, F.execution, F.cancelRequested)
if not v[1] then return {NOT_FOUND} end
if v[1] ~= 'active' or v[2] ~= ARGV[2] then return {LEASE_LOST} end
redis.call('HSET', KEYS[1], F.progressPercent, ARGV[3], F.progressMessage, ARGV[4])
emit(KEYS[2], ARGV[5], 'progress', ARGV[1], {EV.progressPercent, ARGV[3], EV.progressMessage, ARGV[4]})
return {1, v[3] == FLAG and 1 or 0}
