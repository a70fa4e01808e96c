--[[
  An operator's request to one live worker (docs/flow-control.md): pause or resume it (quiet:
  it finishes what runs and takes nothing), or change its concurrency. The request is stored in
  the worker's heartbeat record, numbered, so the worker applies each request once — at once
  when it hears the nudge on the control channel, otherwise at its next beat. Not a queue
  script: the key is the worker's own, in its own slot.

  KEYS[1] jobq:worker:<id>     HASH    the worker's heartbeat record

  ARGV[1] the request's field: wantPaused | wantConcurrency
  ARGV[2] its value: "1" / "0" (wantPaused), the number of slots (wantConcurrency)
  ARGV[3] the worker's id (the nudge's payload)
  ARGV[4] the control channel

  Returns {1, listeners}: stored, and how many subscribers heard the nudge
          {-1} NOT_FOUND: no live worker with this id (its record expired, or it never ran)
  Events: none (a PUBLISH on the control channel).
]]
--@include codes
local key = KEYS[1]
if ARGV[1] ~= 'wantPaused' and ARGV[1] ~= 'wantConcurrency' then
  return redis.error_reply('ERR controlWorker: ' .. ARGV[1] .. ' is not a request field')
end
if redis.call('EXISTS', key) == 0 then return {NOT_FOUND} end
local seq = redis.call('HINCRBY', key, 'controlSeq', 1)
redis.call('HSET', key, ARGV[1], seq .. ':' .. ARGV[2])
return {1, redis.call('PUBLISH', ARGV[4], ARGV[3])}
