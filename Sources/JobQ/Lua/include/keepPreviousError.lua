--@include record
-- Appends a job's current error, as its previous one, to an HSET argument list: a retry, a
-- stall past its limit and a manual retry all keep the error before the new one.
local function keepPreviousError(args, reason, details)
  if reason then
    args[#args + 1] = F.previousReason; args[#args + 1] = reason
    args[#args + 1] = F.previousDetails; args[#args + 1] = details or ''
  end
end
