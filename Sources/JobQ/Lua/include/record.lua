--[[
  The names of every stored field: the job record (jobq:{<q>}:job:<id>, a HASH), an event (an
  entry of jobq:{<q>}:events) and the queue's settings (jobq:{<q>}:meta). Scripts spell a field
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
}
local EV = {
  kind = 'ev', job = 'id', name = 'n', attempt = 'at', worker = 'w', reason = 'er', details = 'ed',
  result = 'r', progressPercent = 'pp', progressMessage = 'pm', retryDelay = 'dl', stallCount = 'sc',
  cancelledBy = 'by', previousState = 'from', state = 'state', count = 'count', group = 'g',
}
local META = {
  paused = 'paused', keepCompleted = 'kc', keepFailed = 'kf', keepCancelled = 'kx',
  concurrency = 'cc', rateCount = 'rn', rateWindow = 'rw', throttledUntil = 'tu', maxWaiting = 'mw',
  groupConcurrency = 'gc', groupRateCount = 'gn', groupRateWindow = 'gw',
}
-- The value of a set flag field (cancelRequested, removeOnComplete, removeOnFail, paused).
local FLAG = '1'
