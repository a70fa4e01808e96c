--[[
  Moves delayed jobs that are due into waiting, at most ARGV[2] per call.

  KEYS[1] jobq:{<q>}:delayed   ZSET    score = due ms
  KEYS[2] jobq:{<q>}:wait        LIST    waiting jobs of priority 0
  KEYS[3] jobq:{<q>}:prioritized ZSET    other priorities; score = (1000 - priority) * 2^41 + sequence
  KEYS[4] jobq:{<q>}:marker      ZSET    wake-up marker
  KEYS[5] jobq:{<q>}:events      STREAM
  KEYS[6] jobq:{<q>}:seq         STRING  sequence counter
  KEYS[7] jobq:{<q>}:job:        prefix of job records
  Derived keys: jobq:{<q>}:job:<id> HASH of each promoted job.

  ARGV[1] events stream cap
  ARGV[2] most jobs to promote (<= 1000)

  Returns {promoted, nextDue}: nextDue = ms until the earliest job still delayed (0: more are
  due now, call again), -1 when none is delayed.
  Events: "waiting" per promoted job.
]]
--@include nowMs
--@include promoteDue
local promoted, nextDue = promoteDue(KEYS[1], KEYS[2], KEYS[3], KEYS[6], KEYS[4], KEYS[5], KEYS[7], ARGV[1], nowMs(), tonumber(ARGV[2]))
return {promoted, nextDue}
