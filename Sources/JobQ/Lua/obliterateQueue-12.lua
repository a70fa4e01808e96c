--[[
  Deletes a whole queue in bounded batches: job records first (at most ARGV[2] per call), then,
  once no job is left, the queue's own keys. Refused unless the queue is paused with no active
  job, or ARGV[1] forces it.

  KEYS[1]  jobq:{<q>}:meta      HASH
  KEYS[2]  jobq:{<q>}:wait      ZSET
  KEYS[3]  jobq:{<q>}:delayed   ZSET
  KEYS[4]  jobq:{<q>}:active    ZSET
  KEYS[5]  jobq:{<q>}:completed ZSET
  KEYS[6]  jobq:{<q>}:failed    ZSET
  KEYS[7]  jobq:{<q>}:cancelled ZSET
  KEYS[8]  jobq:{<q>}:events    STREAM
  KEYS[9]  jobq:{<q>}:marker    ZSET
  KEYS[10] jobq:{<q>}:seq       STRING
  KEYS[11] jobq:{<q>}:reaper    STRING  the reaper's lock
  KEYS[12] jobq:{<q>}:job:      prefix of job records
  Derived keys: jobq:{<q>}:job:<id> HASH of each job deleted.

  ARGV[1] "1" = force (not paused, or active jobs: their workers get NOT_FOUND when they finish)
  ARGV[2] most jobs to delete in this call (<= 1000)

  Returns {deleted, remaining}: remaining = 0 means the queue is gone (meta last, so a paused
          queue stays paused until the end)
          {-5} NOT_PAUSED, {-6} HAS_ACTIVE: refused, nothing deleted
  Events: none (the stream itself is deleted at the end).
]]
--@include common
local force, batch = ARGV[1] == '1', tonumber(ARGV[2])
if not force then
  if redis.call('HEXISTS', KEYS[1], 'paused') == 0 then return {NOT_PAUSED} end
  if redis.call('ZCARD', KEYS[4]) > 0 then return {HAS_ACTIVE} end
end
local deleted = 0
for k = 2, 7 do
  if deleted < batch then
    local ids = redis.call('ZRANGE', KEYS[k], 0, batch - deleted - 1)
    for i = 1, #ids do redis.call('UNLINK', KEYS[12] .. ids[i]) end
    if #ids > 0 then redis.call('ZREMRANGEBYRANK', KEYS[k], 0, #ids - 1) end
    deleted = deleted + #ids
  end
end
local remaining = 0
for k = 2, 7 do remaining = remaining + redis.call('ZCARD', KEYS[k]) end
if remaining == 0 then
  redis.call('UNLINK', KEYS[8], KEYS[9], KEYS[10], KEYS[11], KEYS[1])
end
return {deleted, remaining}
