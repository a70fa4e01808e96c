--[[
  Puts a worker in the registry of live workers until its own expiry, and drops workers whose
  expiry has passed. Each member's score is its own deadline, so a worker with a short lease never
  drops one with a long lease that is still beating. Not a queue script: the registry is global,
  in its own slot.

  KEYS[1] jobq:workers         ZSET    score = Redis time (ms) at which each worker's entry expires

  ARGV[1] worker id
  ARGV[2] expiry, ms (3 of this worker's beats)

  Returns the Redis time of the beat, ms.
  Flags: allow-oom. One member per live worker, its score rewritten each beat; expired members
  are removed in the same call.
  Events: none.
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], string.format('%.0f', now + tonumber(ARGV[2])), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. string.format('%.0f', now))
return now
