--[[
  Counts the jobs of a queue per state, and whether it is paused, in one consistent reading.

  KEYS[1] jobq:{<q>}:wait        LIST
  KEYS[2] jobq:{<q>}:prioritized ZSET
  KEYS[3] jobq:{<q>}:delayed     ZSET
  KEYS[4] jobq:{<q>}:active      ZSET
  KEYS[5] jobq:{<q>}:completed   ZSET
  KEYS[6] jobq:{<q>}:failed      ZSET
  KEYS[7] jobq:{<q>}:cancelled   ZSET
  KEYS[8] jobq:{<q>}:meta        HASH    field "paused"

  Returns {waiting, delayed, active, completed, failed, cancelled, paused (0/1)}.
  Events: none.
]]
--@include record
local counts = {redis.call('LLEN', KEYS[1]) + redis.call('ZCARD', KEYS[2])}
for i = 3, 7 do counts[#counts + 1] = redis.call('ZCARD', KEYS[i]) end
counts[7] = redis.call('HEXISTS', KEYS[8], META.paused)
return counts
