-- The Redis clock in ms: every stored or compared time comes from here. Needs nothing.
local function nowMs()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
