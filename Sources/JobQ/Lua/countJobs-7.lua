--[[
  Counts the jobs of a queue per state, and whether it is paused, in one consistent reading.

  KEYS[1] jobq:{<q>}:wait      ZSET
  KEYS[2] jobq:{<q>}:delayed   ZSET
  KEYS[3] jobq:{<q>}:active    ZSET
  KEYS[4] jobq:{<q>}:completed ZSET
  KEYS[5] jobq:{<q>}:failed    ZSET
  KEYS[6] jobq:{<q>}:cancelled ZSET
  KEYS[7] jobq:{<q>}:meta      HASH    field "paused"

  Returns {waiting, delayed, active, completed, failed, cancelled, paused (0/1)}.
  Events: none.
]]
--@include common
local counts = {}
for i = 1, 6 do counts[i] = redis.call('ZCARD', KEYS[i]) end
counts[7] = redis.call('HEXISTS', KEYS[7], 'paused')
return counts
