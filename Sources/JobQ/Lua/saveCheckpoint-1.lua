--[[
  Stores a running job's checkpoint (owner only: checks the lease token). A retry of the job
  reads it back to resume.

  KEYS[1] jobq:{<q>}:job:<id>  HASH    field cp

  ARGV[1] lease token
  ARGV[2] checkpoint bytes (size checked by the caller)

  Returns {1, cancelRequested (0/1)}, {-2} LEASE_LOST, {-1} NOT_FOUND.
  Events: none (checkpoints are not state moves).
]]
--@include record
--@include codes
local v = redis.call('HMGET', KEYS[1], F.state, F.execution, F.cancelRequested)
if not v[1] then return {NOT_FOUND} end
if v[1] ~= 'active' or v[2] ~= ARGV[1] then return {LEASE_LOST} end
redis.call('HSET', KEYS[1], F.checkpoint, ARGV[2])
return {1, v[3] == FLAG and 1 or 0}
