--[[
  Takes the next runnable job: promotes due delayed jobs (bounded), checks the queue's flow
  limits, pops the best waiting job (priorities above 0, then the FIFO list, then priorities
  below 0, then the job of the group whose turn it is, under that group's limits), makes it
  active under the caller's lease token and records its start in the rate logs.

  KEYS[1] jobq:{<q>}:wait        LIST    waiting jobs of priority 0
  KEYS[2] jobq:{<q>}:prioritized ZSET    other priorities; score = (1000 - priority) * 2^41 + sequence
  KEYS[3] jobq:{<q>}:active      ZSET    score = lease deadline ms
  KEYS[4] jobq:{<q>}:delayed     ZSET    score = due ms
  KEYS[5] jobq:{<q>}:meta        HASH    paused flag, retention and flow limits
  KEYS[6] jobq:{<q>}:marker      ZSET    wake-up marker
  KEYS[7] jobq:{<q>}:events      STREAM
  KEYS[8] jobq:{<q>}:seq         STRING  sequence counter (promoted prioritized jobs)
  KEYS[9] jobq:{<q>}:job:        prefix of job records
  KEYS[10] jobq:{<q>}:rate       LIST    the rate limit's log: start times (ms), oldest first
  KEYS[11] jobq:{<q>}:g:         prefix of the groups' keys (include/groups.lua)
  Derived keys: jobq:{<q>}:job:<id> HASH, for the job taken and each delayed job promoted; the
  group keys of the group taken from, of groups whose turn was checked and of promoted jobs.

  ARGV[1] lease token (the execution id)
  ARGV[2] lease length, ms
  ARGV[3] worker id
  ARGV[4] events stream cap
  ARGV[5] most delayed jobs to promote in this call

  Returns {1, id, nextDue, {field, value, ...}} the job, active; its record after the take
          {0, nextDue}   nothing runnable; ms until the earliest delayed job (-1: none)
          {-3}           PAUSED
          {-10, waitMs, limit}  LIMITED: jobs wait but a flow limit refuses a start; come back
                         in waitMs (-1: when the marker says a slot freed); limit = throttled |
                         concurrency | rate | group (every group with jobs is held)
  Flags: allow-oom. A take moves an id and adds a few short fields to the record (bounded), and
  keeps workers draining, which is what frees memory.
  Events: "waiting" per promoted job; "active" with the attempt and worker id.
]]
--@include nowMs
--@include takeNext
return takeNext(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10],
  KEYS[11], ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4], nowMs(), tonumber(ARGV[5]), nil, true)
