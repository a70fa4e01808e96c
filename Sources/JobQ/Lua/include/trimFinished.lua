-- Deletes finished records beyond `limit` in a finished-state ZSET, oldest first, at most
-- `most` of them (so lowering a limit never makes one call huge). Needs nothing.
local function trimFinished(setKey, limit, jobPrefix, most)
  local excess = redis.call('ZCARD', setKey) - limit
  if excess <= 0 then return 0 end
  if excess > most then excess = most end
  local popped = redis.call('ZPOPMIN', setKey, excess)
  local keys = {}
  for i = 1, #popped, 2 do keys[#keys + 1] = jobPrefix .. popped[i] end
  redis.call('UNLINK', unpack(keys))
  return #keys
end
