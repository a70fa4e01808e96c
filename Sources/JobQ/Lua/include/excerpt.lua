-- The first `limit` bytes of a value, for event fields ('' for none; no limit when nil).
-- Needs nothing.
local function excerpt(value, limit)
  if not value then return '' end
  if limit and #value > limit then return string.sub(value, 1, limit) end
  return value
end
