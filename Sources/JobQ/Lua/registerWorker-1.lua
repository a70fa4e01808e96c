--[[
  Puts a worker in the registry of live workers with the time of its beat, and drops workers
  silent for longer than the expiry. Not a queue script: the registry is global, in its own slot.

  KEYS[1] jobq:workers         ZSET    score = Redis time (ms) of each worker's last beat

  ARGV[1] worker id
  ARGV[2] expiry, ms (3 beats): members older than this are removed

  Returns the Redis time of the beat, ms.
  Flags: allow-oom. One member per live worker, its score rewritten each beat; stale members
  are removed in the same call.
  Events: none.
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. string.format('%.0f', now - tonumber(ARGV[2])))
return now
