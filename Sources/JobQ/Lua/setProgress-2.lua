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
--@include common
local v = redis.call('HMGET', KEYS[1], 's', 'x', 'cr')
if not v[1] then return {NOT_FOUND} end
if v[1] ~= 'active' or v[2] ~= ARGV[2] then return {LEASE_LOST} end
redis.call('HSET', KEYS[1], 'pp', ARGV[3], 'pm', ARGV[4])
emit(KEYS[2], ARGV[5], 'progress', ARGV[1], {'pp', ARGV[3], 'pm', ARGV[4]})
return {1, v[3] == '1' and 1 or 0}
