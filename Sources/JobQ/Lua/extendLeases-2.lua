--[[
  Renews the leases of a worker's active jobs (at most 1,000 per call) and reports which of them
  have a cancel request, so a worker that missed the pub/sub message still learns it.

  KEYS[1] jobq:{<q>}:active    ZSET    score = lease deadline ms
  KEYS[2] jobq:{<q>}:job:      prefix of job records
  Derived keys: jobq:{<q>}:job:<id> HASH for every id in ARGV.

  ARGV[1] lease length, ms
  ARGV[2], ARGV[3], ... job id, lease token pairs

  Returns {renewed, {lost tokens}, {cancel-requested tokens}}: a lost run's job is no longer
  active with that token (LEASE_LOST: the worker must drop its result and fire the run's token).
  Runs are named by token, not job id: one worker may hold an old, stopped run and a new run of
  the same id at once, and only the token tells them apart.
  Flags: allow-oom. Renewal only rewrites the scores of members already in the active set (ZADD
  XX): it never grows memory, and refusing it under OOM would make healthy workers fence and
  stop their own long jobs.
  Events: none.
]]
--@include record
--@include nowMs
local activeKey, jobPrefix = KEYS[1], KEYS[2]
local deadline = nowMs() + tonumber(ARGV[1])
local renewed, lost, cancelRequested = 0, {}, {}
for i = 2, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  local v = redis.call('HMGET', jobPrefix .. id, F.state, F.execution, F.cancelRequested)
  if v[1] == 'active' and v[2] == token then
    redis.call('ZADD', activeKey, 'XX', deadline, id)
    renewed = renewed + 1
    if v[3] == FLAG then cancelRequested[#cancelRequested + 1] = token end
  else
    lost[#lost + 1] = token
  end
end
return {renewed, lost, cancelRequested}
