--[[
  The codes scripts return to Swift (ScriptCode.swift mirrors them; a unit test checks both):
    -1 NOT_FOUND      no such job
    -2 LEASE_LOST     the job is not active with that lease token
    -3 PAUSED         the queue is paused
    -4 IS_ACTIVE      refused: the job is running
    -5 NOT_PAUSED     refused: pause the queue first (or force)
    -6 HAS_ACTIVE     refused: jobs are running (or force)
    -7 WRONG_STATE    refused: the job is not in a state this call accepts
    -8 OK_ALREADY     a repeat of a call that was already applied
    -9 TOO_LARGE      a value over its size limit
   -10 LIMITED        a take refused by a flow limit (rate, concurrency, throttle)
   -11 QUEUE_FULL     an add refused: the queue holds its maximum of waiting and delayed jobs
  Positive codes are each script's own and named in it. Needs nothing.
]]
local NOT_FOUND, LEASE_LOST, PAUSED, IS_ACTIVE = -1, -2, -3, -4
local NOT_PAUSED, HAS_ACTIVE, WRONG_STATE, OK_ALREADY, TOO_LARGE = -5, -6, -7, -8, -9
local LIMITED, QUEUE_FULL = -10, -11
