--[[
  Waiting jobs of priority 0 (the usual case) sit in the `wait` LIST: LPUSH in, RPOP out, FIFO at
  O(1). Other priorities sit in the `prioritized` ZSET, score = (1000 - priority) * BAND +
  sequence: a larger priority sorts first, the queue's sequence keeps FIFO inside one priority.
  Scores below ZERO_SCORE are priorities above 0 (they run before the list); the rest after it.
  Needs nothing.
]]
local BAND = 2199023255552 -- 2^41
local ZERO_SCORE = 1000 * BAND

-- The prioritized ZSET's score of a job, as an exact integer string (scores pass 2^53 / 10).
local function priorityScore(priority, seq)
  return string.format('%.0f', (1000 - priority) * BAND + seq)
end
