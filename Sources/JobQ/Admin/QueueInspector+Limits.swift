/// Flow limits at run time (`docs/flow-control.md`): stored in the queue's settings, read by
/// every take, so a change reaches every worker at its next take.
extension QueueInspector {
    /// The queue's flow limits, and a throttle if one lies ahead.
    public func limits() async throws(JobQError) -> QueueLimits {
        try await counts().limits
    }

    /// Changes the queue's flow limits in one atomic step: a limit given as `.set` is set, as
    /// `.off` removed, one not given left as it is; `clearingAll` removes every limit (and a
    /// handler's throttle) first. Every worker waiting on a limit re-checks at once. Returns the
    /// limits now in force.
    @discardableResult
    public func setLimits(
        rate: LimitSetting<RateLimit>? = nil, concurrency: LimitSetting<Int>? = nil, maxWaiting: LimitSetting<Int>? = nil,
        clearingAll: Bool = false
    ) async throws(JobQError) -> QueueLimits {
        var fields: [(QueueMetaField, String)] = []
        switch rate {
        case .set(let r)?:
            try r.validate(queue: name, what: "rate")
            fields += [(.rateCount, String(r.count)), (.rateWindow, String(r.window.milliseconds))]
        case .off?: fields += [(.rateCount, ""), (.rateWindow, "")]
        case nil: break
        }
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
        if clearingAll || !fields.isEmpty {
            try await core.call(core.setLimitsCall(fields, clearAll: clearingAll))
        }
        return try await limits()
    }
}
