/// Every Redis key of one queue (`docs/data-model.md`): all start with `jobq:{<queue>}:`, so the whole
/// queue lives in one Redis Cluster slot and one script may touch any of them.
///
/// Side keys use fixed suffixes defined here and nowhere else. Keys of jobs a script discovers
/// (the next job, trimmed records, due delayed jobs) are built inside the script from
/// ``jobPrefix``, which is itself passed as a KEY.
public struct QueueKeys: Sendable, Hashable {
    /// The validated queue name.
    public let queue: String
    /// `jobq:{<queue>}:`
    public let base: String

    public init(queue: String) throws(JobQError) {
        try Self.validate(queue: queue)
        self.queue = queue
        self.base = "jobq:{\(queue)}:"
    }

    /// `LIST` of waiting jobs of priority 0: `LPUSH` in, `RPOP` out (FIFO, O(1)).
    public var wait: String { base + "wait" }
    /// `ZSET` of waiting jobs of other priorities; score = (1000 − priority) · 2⁴¹ + sequence.
    /// Those above 0 run before the `wait` list, those below after it.
    public var prioritized: String { base + "prioritized" }
    /// `ZSET` of delayed jobs; score = due time (ms, Redis clock).
    public var delayed: String { base + "delayed" }
    /// `ZSET` of running jobs; score = lease deadline (ms, Redis clock).
    public var active: String { base + "active" }
    /// `ZSET` of retained completed records; score = finish time.
    public var completed: String { base + "completed" }
    /// `ZSET` of retained failed records; score = finish time.
    public var failed: String { base + "failed" }
    /// `ZSET` of retained cancelled records; score = finish time.
    public var cancelled: String { base + "cancelled" }
    /// `HASH`: paused flag, retention limits.
    public var meta: String { base + "meta" }
    /// `ZSET` with at most one member: idle fetchers block on it (`BZPOPMIN`).
    public var marker: String { base + "marker" }
    /// `STREAM` of events, capped.
    public var events: String { base + "events" }
    /// `STRING` counter giving FIFO order inside a priority.
    public var sequence: String { base + "seq" }
    /// `LIST`, the rate limit's sliding log: each job start's time (ms, Redis clock), oldest
    /// first. A take at the limit trims it, so it holds at most the limit's count; removing
    /// the rate limit deletes it.
    public var rate: String { base + "rate" }
    /// Prefix of the groups' keys, `jobq:{<queue>}:g:` (`docs/data-model.md`): `ready` (ZSET,
    /// the rotation), `later` (ZSET, held by time), `blocked` (SET, held for a slot or a
    /// resume), `waiting` (STRING, jobs in all groups' lines), `known` (SET), and per group
    /// `w:<g>` (ZSET, its line), `a:<g>` (SET, its running jobs), `m:<g>` (HASH, its
    /// settings), `r:<g>` (LIST, its rate log). Scripts derive them all from this prefix.
    public var groupPrefix: String { base + "g:" }
    /// `SET` of the groups that have waiting or running jobs or settings of their own.
    public var knownGroups: String { groupPrefix + "known" }
    /// `ZSET` of one group's waiting jobs; score as in ``prioritized``.
    public func groupWaiting(_ group: String) -> String { groupPrefix + "w:" + group }

    /// Prefix of the schedules' keys, `jobq:{<queue>}:s:` (`docs/schedules.md`): `ids` (SET of
    /// every schedule's id), `due` (ZSET: score = when the schedule is to be advanced, ms) and
    /// per schedule `h:<id>` (HASH, its spec and state).
    public var schedulePrefix: String { base + "s:" }
    public var scheduleIDs: String { schedulePrefix + "ids" }
    public var scheduleDue: String { schedulePrefix + "due" }
    /// Prefix of the schedules' hashes (scripts derive a claimed schedule's key from it).
    public var scheduleHashPrefix: String { schedulePrefix + "h:" }
    /// `HASH` of one schedule.
    public func schedule(_ id: String) -> String { scheduleHashPrefix + id }

    /// `STRING` lock held by the worker running the reaper.
    public var reaperLock: String { base + "reaper" }
    /// Pub/sub channel carrying cancel requests (sharded pub/sub in cluster mode).
    public var cancelChannel: String { base + "cancel" }
    /// Prefix of job records: `jobq:{<queue>}:job:`.
    public var jobPrefix: String { base + "job:" }

    /// `HASH` record of one job.
    public func job(_ id: String) -> String { jobPrefix + id }

    /// The key of the set holding jobs in `state` (for `waiting`: the list of priority-0 jobs;
    /// the others are in ``prioritized``).
    public func set(for state: JobState) -> String {
        switch state {
        case .waiting: wait
        case .delayed: delayed
        case .active: active
        case .completed: completed
        case .failed: failed
        case .cancelled: cancelled
        }
    }

    /// Global `SET` of queue names (its own slot; never touched inside a queue script).
    public static let queueRegistry = "jobq:queues"
    /// Global `ZSET` of live workers (score = when the worker's entry expires: 3 of its beats
    /// after its last one).
    public static let workerRegistry = "jobq:workers"
    /// Global `HASH` of one worker's heartbeat (fields: `HeartbeatField`), expiring 3 beats after
    /// the last one. Its own slot: only the two worker-wide scripts touch it.
    public static func heartbeat(of workerID: String) -> String { "jobq:worker:" + workerID }
    /// Global pub/sub channel nudging a worker to read an operator's request now (payload:
    /// its id); without it, the worker reads the request at its next beat.
    public static let controlChannel = "jobq:control"

    /// Checks a group name: 1–256 bytes of UTF-8 without control characters. Braces are
    /// fine: the queue's hash tag comes first in every key.
    public static func validate(group: String, queue: String) throws(JobQError) {
        let bytes = group.utf8.count
        guard bytes >= 1, bytes <= 256 else {
            throw JobQError(.invalidOptions, queue: queue, detail: "a group name is 1 to 256 bytes long; this one is \(bytes)")
        }
        if let bad = group.unicodeScalars.first(where: { $0.properties.generalCategory == .control }) {
            throw JobQError(
                .invalidOptions, queue: queue,
                detail: "a group name may not contain a control character (U+\(String(bad.value, radix: 16, uppercase: true)))")
        }
    }

    /// Checks a queue name: 1–100 bytes of UTF-8, no `{`, `}` or control characters (an empty or
    /// broken hash tag would scatter the queue across cluster slots).
    public static func validate(queue: String) throws(JobQError) {
        let bytes = queue.utf8.count
        guard bytes >= 1, bytes <= 100 else {
            throw JobQError(.invalidQueueName, queue: queue, detail: "a queue name is 1 to 100 bytes long; this one is \(bytes)")
        }
        if let bad = queue.unicodeScalars.first(where: { $0 == "{" || $0 == "}" || $0.properties.generalCategory == .control }) {
            let shown = bad.properties.generalCategory == .control ? "a control character (U+\(String(bad.value, radix: 16, uppercase: true)))" : "\"\(bad)\""
            throw JobQError(.invalidQueueName, queue: queue, detail: "a queue name may not contain \(shown): it would break the key's {hash tag}")
        }
    }
}
