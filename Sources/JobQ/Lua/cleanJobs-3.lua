--[[
  Deletes finished records (completed, failed or cancelled) that finished more than ARGV[1] ms
  ago, oldest first, at most ARGV[2] per call.

  KEYS[1] jobq:{<q>}:<state>   ZSET    completed | failed | cancelled, score = finish ms
  KEYS[2] jobq:{<q>}:events    STREAM
  KEYS[3] jobq:{<q>}:job:      prefix of job records
  Derived keys: jobq:{<q>}:job:<id> HASH of each record deleted.

  ARGV[1] minimum age in ms (0 = all)
  ARGV[2] most records to delete (<= 1000)
  ARGV[3] events stream cap
  ARGV[4] the state's name, for the event

  Returns {deleted, remaining}: remaining = records old enough still there.
  Events: one "cleaned" event per call that deleted something (state, count).
]]
--@include record
--@include nowMs
--@include emit
local setKey, eventsKey, jobPrefix = KEYS[1], KEYS[2], KEYS[3]
local cutoff = nowMs() - tonumber(ARGV[1])
local ids = redis.call('ZRANGEBYSCORE', setKey, '-inf', cutoff, 'LIMIT', 0, tonumber(ARGV[2]))
for i = 1, #ids do
  redis.call('UNLINK', jobPrefix .. ids[i])
end
if #ids > 0 then
  redis.call('ZREM', setKey, unpack(ids))
  emit(eventsKey, ARGV[3], 'cleaned', '', {EV.state, ARGV[4], EV.count, #ids})
end
return {#ids, redis.call('ZCOUNT', setKey, '-inf', cutoff)}
