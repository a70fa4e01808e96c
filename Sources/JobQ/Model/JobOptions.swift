public import Foundation

/// How a job is added and run. Defaults follow `docs/job-lifecycle.md`; only non-defaults are stored.
public struct JobOptions: Sendable, Hashable {
    /// A custom id: adding an id that exists adds nothing (dedup, for as long as the record lives).
    public var jobID: String?
    /// Run no earlier than this long after the add (Redis clock).
    public var delay: Duration?
    /// Run no earlier than this time (a time in the past runs at once).
    public var runAt: Date?
    public var priority: JobPriority = .normal
    /// Runs in all, the first included (1…1000).
    public var attempts: Int = 3
    public var backoff: Backoff = .default
    /// A run still going after this long fails with reason `timeout` (retried while attempts remain).
    public var timeout: Duration = .seconds(300)
    /// Lease expiries tolerated before the job fails with reason `stalled` (0…1000).
    public var maxStalls: Int = 1
    /// Delete this job's record as soon as it completes (the `completed` event keeps the result).
    public var removeOnComplete: Bool = false
    /// Delete this job's record as soon as it fails for good.
    public var removeOnFail: Bool = false
    /// The job's group (a tenant, a customer, an API key): takes rotate fairly over the groups
    /// that have jobs ready, each under its own limits (`docs/flow-control.md`). 1–256 bytes of
    /// UTF-8 without control characters; nil = no group (such jobs go before grouped ones).
    public var group: String?

    public init(
        jobID: String? = nil, delay: Duration? = nil, runAt: Date? = nil, priority: JobPriority = .normal,
        attempts: Int = 3, backoff: Backoff = .default, timeout: Duration = .seconds(300), maxStalls: Int = 1,
        removeOnComplete: Bool = false, removeOnFail: Bool = false, group: String? = nil
    ) {
        self.jobID = jobID
        self.delay = delay
        self.runAt = runAt
        self.priority = priority
        self.attempts = attempts
        self.backoff = backoff
        self.timeout = timeout
        self.maxStalls = maxStalls
        self.removeOnComplete = removeOnComplete
        self.removeOnFail = removeOnFail
        self.group = group
    }

    public static let `default` = JobOptions()

    /// These options with the job in `group`.
    public func group(_ group: String) -> JobOptions {
        var copy = self
        copy.group = group
        return copy
    }

    /// A job of no group with default options otherwise: `.group("tenant-42")`.
    public static func group(_ group: String) -> JobOptions { JobOptions(group: group) }

    /// Checks every range; throws ``JobQError/Code-swift.struct/invalidOptions`` naming the option.
    public func validate(queue: String) throws(JobQError) {
        func bad(_ text: String) -> JobQError { JobQError(.invalidOptions, queue: queue, jobID: jobID, detail: text) }
        if let jobID { try JobID.validate(custom: jobID, queue: queue) }
        if let group { try QueueKeys.validate(group: group, queue: queue) }
        guard JobPriority.range.contains(priority.value) else { throw bad("priority \(priority.value) is outside -1000…1000") }
        guard (1...1000).contains(attempts) else { throw bad("attempts \(attempts) is outside 1…1000 (it counts runs, the first included)") }
        guard (0...1000).contains(maxStalls) else { throw bad("maxStalls \(maxStalls) is outside 0…1000") }
        guard timeout > .zero, timeout <= .seconds(7 * 86400) else { throw bad("timeout must be more than 0 and at most 7 days") }
        if let delay, delay < .zero || delay > .seconds(10 * 365 * 86400) { throw bad("delay must be 0…10 years") }
        if delay != nil && runAt != nil { throw bad("give delay or runAt, not both") }
        // The same horizon as delay (runAt in the past means now).
        if let runAt, runAt.timeIntervalSinceNow > 10 * 365 * 86400 { throw bad("runAt must be within 10 years from now") }
        guard backoff.base >= .zero, backoff.cap >= backoff.base, (0...10).contains(backoff.jitter) else {
            throw bad("backoff needs 0 ≤ base ≤ max and jitter 0…10")
        }
    }

    /// The record's option fields, defaults omitted (small hashes stay in Redis's compact
    /// encoding; see `docs/data-model.md`).
    var storedFields: [(String, String)] {
        var fields: [(JobField, String)] = []
        if priority.value != 0 { fields.append((.priority, String(priority.value))) }
        if attempts != 3 { fields.append((.attempts, String(attempts))) }
        if backoff != .default { fields.append((.backoff, backoff.encoded)) }
        if timeout != .seconds(300) { fields.append((.timeout, String(timeout.milliseconds))) }
        if maxStalls != 1 { fields.append((.maxStalls, String(maxStalls))) }
        if removeOnComplete { fields.append((.removeOnComplete, JobField.flagSet)) }
        if removeOnFail { fields.append((.removeOnFail, JobField.flagSet)) }
        if let group { fields.append((.group, group)) }
        return fields.map { ($0.0.rawValue, $0.1) }
    }

    /// Options read back from a record's fields.
    init(fields: [String: [UInt8]], id: String) {
        func text(_ f: JobField) -> String? { fields[f.rawValue].map { String(decoding: $0, as: UTF8.self) } }
        self.init()
        jobID = JobID.isGenerated(id) ? nil : id
        if let p = text(.priority).flatMap(Int.init) { priority = JobPriority(p) }
        if let a = text(.attempts).flatMap(Int.init) { attempts = a }
        if let b = text(.backoff).flatMap(Backoff.init(encoded:)) { backoff = b }
        if let t = text(.timeout).flatMap(Int64.init) { timeout = .milliseconds(t) }
        if let m = text(.maxStalls).flatMap(Int.init) { maxStalls = m }
        removeOnComplete = text(.removeOnComplete) == JobField.flagSet
        removeOnFail = text(.removeOnFail) == JobField.flagSet
        group = text(.group)
    }
}

/// Limits and knobs of one queue as seen by this process.
public struct QueueSettings: Sendable, Hashable {
    /// Largest payload accepted by `add` (`docs/data-model.md`: 1 MiB).
    public var maxPayloadBytes = 1 << 20
    /// Largest result and checkpoint stored.
    public var maxResultBytes = 1 << 20
    public var maxCheckpointBytes = 1 << 20
    /// Largest error details stored (longer ones are cut, with a note).
    public var maxErrorBytes = 16 << 10
    /// Approximate cap of the events stream (`XADD MAXLEN ~`).
    public var eventsMaxLength = 10_000
    /// Bytes of result or error carried by completed/failed events.
    public var eventExcerptBytes = 1024
    /// Records handled per call by bulk operations (clean, purge, obliterate, retry all); ≤ 1,000.
    public var batchSize = 1000
    /// Publish cancel requests with `SPUBLISH`. Always on with a cluster client
    /// (`redis+cluster://`), whose workers listen with `SSUBSCRIBE` on each queue's node.
    public var shardedPubSub = false
    /// Durable adds (opt-in, `docs/guarantees.md`): after each add (and each `addBulk` flight) the client
    /// sends `WAIT <replicas> <timeout>` on the same connection. An add that fewer replicas
    /// confirmed in time throws `notReplicated`: the job is on the primary and will run, but a
    /// failover now could lose it. 0 (the default) waits for nothing.
    ///
    /// Limits: `WAIT` covers the writes made before it on its connection, so an add whose
    /// connection was replaced mid-flight (a resend after a reconnect, or a cluster redirect
    /// during resharding) may be confirmed without its write being replicated. Rare; add again
    /// with the same id to be sure.
    public var replicasToConfirmAdds = 0
    /// How long an add waits for `replicasToConfirmAdds` replicas.
    public var replicaConfirmTimeout: Duration = .seconds(1)

    public init() {}
}
