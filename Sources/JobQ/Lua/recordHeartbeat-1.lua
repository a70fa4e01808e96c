--[[
  Records one worker's heartbeat: its fields (last beat, running count, host, pid, queues…) and
  an expiry of 3 beats, so a worker that stops beating disappears by itself. Not a queue script:
  the key is the worker's own, in its own slot. Answers the operator's standing requests for
  this worker (controlWorker-1 writes them into the same record).

  KEYS[1] jobq:worker:<id>     HASH    the worker's heartbeat record

  ARGV[1] expiry, ms (3 beats)
  ARGV[2], ARGV[3], ... field, value pairs

  Returns {wantPaused, wantConcurrency}: each "<seq>:<value>" as controlWorker-1 wrote it, or
          false when there is none.
  Flags: allow-oom. The record is one small hash per live worker, rewritten in place; refused
  under OOM, a draining worker would vanish from `jobq-admin workers` just when an operator
  looks for it.
  Events: none.
]]
local key = KEYS[1]
local args = {'HSET', key}
for i = 2, #ARGV do args[#args + 1] = ARGV[i] end
if #args > 2 then redis.call(unpack(args)) end
redis.call('PEXPIRE', key, ARGV[1])
return redis.call('HMGET', key, 'wantPaused', 'wantConcurrency')
