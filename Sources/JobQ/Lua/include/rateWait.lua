-- The sliding log of a rate limit (the queue's or a group's): how long until a start is
-- allowed, or nil now. The log is a LIST of the start times, oldest first (each start RPUSHes
-- its time), so every window of that length, wherever it begins, holds at most `count` starts:
-- a start is allowed when the one `count` places back from the newest has left the window. The
-- log is trimmed only then, to `count` - 1 entries, so it never holds more than `count` and a
-- take that is let through pays one LLEN (and, at the limit, one LINDEX and one LPOP) — no
-- sorted-set insert. The take records its start. Needs nothing.
local function rateWait(rateKey, count, window, now)
  local used = redis.call('LLEN', rateKey)
  if used < count then return nil end
  -- After a lowered limit the log can hold more than count: wait for enough to leave.
  local edge = tonumber(redis.call('LINDEX', rateKey, used - count))
  if edge <= now - window then
    redis.call('LPOP', rateKey, used - count + 1)
    return nil
  end
  local wait = edge + window - now
  if wait < 1 then wait = 1 end
  return wait
end
