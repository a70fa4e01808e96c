--[[
  Purge (alias drain): deletes waiting and delayed jobs, at most ARGV[1] per call. Active and
  finished jobs are left alone.

  KEYS[1] jobq:{<q>}:wait      ZSET
  KEYS[2] jobq:{<q>}:delayed   ZSET
  KEYS[3] jobq:{<q>}:events    STREAM
  KEYS[4] jobq:{<q>}:job:      prefix of job records
  Derived keys: jobq:{<q>}:job:<id> HASH of each job deleted.

  ARGV[1] most jobs to delete (<= 1000)
  ARGV[2] events stream cap

  Returns {deleted, remaining}: remaining = waiting + delayed jobs left.
  Events: "removed" per job.
]]
--@include common
local batch = tonumber(ARGV[1])
local deleted = 0
for _, setKey in ipairs({KEYS[1], KEYS[2]}) do
  if deleted < batch then
    local ids = redis.call('ZRANGE', setKey, 0, batch - deleted - 1)
    for i = 1, #ids do
      redis.call('UNLINK', KEYS[4] .. ids[i])
      emit(KEYS[3], ARGV[2], 'removed', ids[i], {'from', setKey == KEYS[1] and 'waiting' or 'delayed'})
    end
    if #ids > 0 then redis.call('ZREMRANGEBYRANK', setKey, 0, #ids - 1) end
    deleted = deleted + #ids
  end
end
return {deleted, redis.call('ZCARD', KEYS[1]) + redis.call('ZCARD', KEYS[2])}
