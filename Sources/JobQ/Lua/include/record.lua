--[[
  The names of every stored field: the job record (jobq:{<q>}:job:<id>, a HASH), an event (an
  entry of jobq:{<q>}:events), the queue's settings (jobq:{<q>}:meta) and a schedule
  (jobq:{<q>}:s:h:<id>). Scripts spell a field
  only through these tables. Swift's RecordSchema.swift holds the same names (RecordSchemaTests
  checks that both agree); docs/data-model.md gives each field's type, default and meaning.
  Needs nothing.
]]
local F = {
  name = 'n', payload = 'd', encoding = 'e', priority = 'p', attempts = 'a', backoff = 'bo',
  timeout = 'to', maxStalls = 'ms', removeOnComplete = 'rc', removeOnFail = 'rf',
  state = 's', createdAt = 'ct', dueAt = 'du',
  attemptsMade = 'am', stallCount = 'sc', startedAt = 'st', finishedAt = 'ft', worker = 'w',
  execution = 'x', progressPercent = 'pp', progressMessage = 'pm', checkpoint = 'cp', result = 'r',
  errorReason = 'er', errorDetails = 'ed', previousReason = 'pe', previousDetails = 'pd',
  cancelRequested = 'cr', cancelReason = 'cx', cancelRequestedBy = 'cb', group = 'g',
  schedule = 'sd', tick = 'tk',
}
local EV = {
  kind = 'ev', job = 'id', name = 'n', attempt = 'at', worker = 'w', reason = 'er', details = 'ed',
  result = 'r', progressPercent = 'pp', progressMessage = 'pm', retryDelay = 'dl', stallCount = 'sc',
  cancelledBy = 'by', previousState = 'from', state = 'state', count = 'count', group = 'g',
  schedule = 'sd', tick = 'tk', lastTick = 'tl',
}
local META = {
  paused = 'paused', keepCompleted = 'kc', keepFailed = 'kf', keepCancelled = 'kx',
  concurrency = 'cc', rateCount = 'rn', rateWindow = 'rw', throttledUntil = 'tu', maxWaiting = 'mw',
  groupConcurrency = 'gc', groupRateCount = 'gn', groupRateWindow = 'gw',
}
-- A schedule (jobq:{<q>}:s:h:<id>, a HASH): its spec as given (SPEC lists those fields, which an
-- upsert compares), then what the scheduler keeps.
local SCHED = {
  kind = 'k', expression = 'x', zone = 'z', anchor = 'an', name = 'n', payload = 'd', encoding = 'e',
  options = 'o', priority = 'p', misfire = 'mf', overlap = 'ov', jitter = 'jt', grace = 'gr',
  version = 'v', paused = 'ps', nextTick = 'nx', pendingJob = 'pj', pendingTick = 'pt', lastJob = 'lj',
  lastTick = 'lt', createdAt = 'ct', updatedAt = 'ut', fired = 'fc', skipped = 'sk', skipReason = 'sr',
  skippedAt = 'sa',
}
local SPEC = {
  SCHED.kind, SCHED.expression, SCHED.zone, SCHED.anchor, SCHED.name, SCHED.payload, SCHED.encoding,
  SCHED.options, SCHED.priority, SCHED.misfire, SCHED.overlap, SCHED.jitter, SCHED.grace,
}
-- The value of a set flag field (cancelRequested, removeOnComplete, removeOnFail, paused).
local FLAG = '1'
