--[[
  Claims schedules due to be advanced: each one returned is hidden from other schedulers for
  the claim time (so a fleet does not all compute the same tick), and comes back by itself if
  the claimer dies before advancing it.

  KEYS[1] jobq:{<q>}:s:due     ZSET    schedules to advance; score = when (ms, Redis clock)
  KEYS[2] jobq:{<q>}:s:h:      prefix of the schedules' hashes
  Derived keys: jobq:{<q>}:s:h:<id> of each schedule claimed.

  ARGV[1] claim time, ms
  ARGV[2] the most to claim (at most 1,000)

  Returns {now, next, id1, fields1, id2, fields2, ...}: now = the Redis clock (ms); next = ms
          from now until the next schedule not claimed is due (-1: none); fields = the
          schedule's hash as a flat name, value list. An id whose hash is gone is dropped from
          the set and not returned.
  Events: none.
]]
--@include nowMs
local dueKey, prefix = KEYS[1], KEYS[2]
local claim, most = tonumber(ARGV[1]), tonumber(ARGV[2])
if most > 1000 then return redis.error_reply('dueSchedules: at most 1000 per call') end
local now = nowMs()
local ids = redis.call('ZRANGEBYSCORE', dueKey, '-inf', now, 'LIMIT', 0, most)
local out = {now, -1}
-- One ZADD (and one ZREM) for all: each command a script runs has a fixed cost.
local claimed, gone = {'ZADD', dueKey}, {'ZREM', dueKey}
for i = 1, #ids do
  local fields = redis.call('HGETALL', prefix .. ids[i])
  if #fields == 0 then
    gone[#gone + 1] = ids[i]
  else
    claimed[#claimed + 1] = now + claim
    claimed[#claimed + 1] = ids[i]
    out[#out + 1] = ids[i]
    out[#out + 1] = fields
  end
end
if #claimed > 2 then redis.call(unpack(claimed)) end
if #gone > 2 then redis.call(unpack(gone)) end
local first = redis.call('ZRANGE', dueKey, 0, 0, 'WITHSCORES')
if first[2] then
  local left = tonumber(first[2]) - now
  if left < 0 then left = 0 end
  -- More were due than claimed: come back at once.
  out[2] = left
end
return out
