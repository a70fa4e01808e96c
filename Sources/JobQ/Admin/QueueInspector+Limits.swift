/// Flow limits at run time (`docs/flow-control.md`): stored in the queue's settings, read by
/// every take, so a change reaches every worker at its next take.
extension QueueInspector {
    /// The queue's flow limits, and a throttle if one lies ahead.
    public func limits() async throws(JobQError) -> QueueLimits {
        try await counts().limits
    }

    /// Changes the queue's flow limits in one atomic step: a limit given as `.set` is set, as
    /// `.off` removed, one not given left as it is; `clearingAll` removes every limit (and a
    /// handler's throttle) first. `groupRate` and `groupConcurrency` are each group's defaults
    /// (``setGroupLimits(_:rate:concurrency:clearingAll:)`` overrides them for one group).
    /// Every worker waiting on a limit re-checks at once. Returns the limits now in force.
    @discardableResult
    public func setLimits(
        rate: LimitSetting<RateLimit>? = nil, concurrency: LimitSetting<Int>? = nil, maxWaiting: LimitSetting<Int>? = nil,
        groupRate: LimitSetting<RateLimit>? = nil, groupConcurrency: LimitSetting<Int>? = nil, clearingAll: Bool = false
    ) async throws(JobQError) -> QueueLimits {
        var fields: [(QueueMetaField, String)] = []
        func rateFields(_ setting: LimitSetting<RateLimit>?, _ count: QueueMetaField, _ window: QueueMetaField, _ what: String) throws(JobQError) {
            switch setting {
            case .set(let r)?:
                try r.validate(queue: name, what: what)
                fields += [(count, String(r.count)), (window, String(r.window.milliseconds))]
            case .off?: fields += [(count, ""), (window, "")]
            case nil: break
            }
        }
        try rateFields(rate, .rateCount, .rateWindow, "rate")
        try rateFields(groupRate, .groupRateCount, .groupRateWindow, "group rate")
        func count(_ setting: LimitSetting<Int>?, _ field: QueueMetaField, _ range: ClosedRange<Int>, _ what: String) throws(JobQError) {
            switch setting {
            case .set(let n)?:
                guard range.contains(n) else {
                    throw JobQError(.invalidOptions, queue: name, detail: "\(what) \(n): it is 1…\(range.upperBound) jobs (use off for none)")
                }
                fields.append((field, String(n)))
            case .off?: fields.append((field, ""))
            case nil: break
            }
        }
        try count(concurrency, .concurrency, QueueLimits.concurrencies, "concurrency")
        try count(maxWaiting, .maxWaiting, QueueLimits.maxWaitings, "max waiting")
        try count(groupConcurrency, .groupConcurrency, QueueLimits.concurrencies, "group concurrency")
        if clearingAll || !fields.isEmpty {
            try await core.call(core.setLimitsCall(fields, clearAll: clearingAll))
        }
        return try await limits()
    }
}
