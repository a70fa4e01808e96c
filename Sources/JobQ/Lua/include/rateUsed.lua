-- Starts inside the window ending `now` in a rate log (rateWait.lua: a LIST of start times,
-- oldest first), by binary search: O(log n) LINDEX reads. Returns the count and the index of the
-- first start inside the window. Needs nothing.
local function rateUsed(rateKey, window, now)
  local n = redis.call('LLEN', rateKey)
  local low, high = 0, n
  while low < high do
    local mid = math.floor((low + high) / 2)
    if tonumber(redis.call('LINDEX', rateKey, mid)) > now - window then high = mid else low = mid + 1 end
  end
  return n - low, low
end
