public import Foundation

/// One entry of a queue's event stream (`jobq:{<q>}:events`).
public struct QueueEvent: Sendable, Hashable {
    /// What happened. Exactly one event per state move, plus progress and operator actions
    /// (`docs/job-lifecycle.md` lists which move writes which event).
    public enum Kind: Sendable, Hashable, CustomStringConvertible {
        case added, delayed, waiting, active, progress, completed, failed, retrying, stalled
        case cancelled, cancelRequested, removed, paused, resumed, cleaned
        /// The queue's flow limits changed (`docs/flow-control.md`).
        case limits
        /// A schedule's tick added its job (`docs/schedules.md`): ``QueueEvent/scheduleID``,
        /// ``QueueEvent/tick``, and the job's state (`delayed` ahead of its time, or `waiting`).
        case scheduled
        /// A schedule skipped ticks: ``QueueEvent/skip`` says why (`misfire`, `overlap`,
        /// `queueFull`), how many and which.
        case skipped
        case other(String)

        init(_ text: String) {
            switch text {
            case "added": self = .added
            case "delayed": self = .delayed
            case "waiting": self = .waiting
            case "active": self = .active
            case "progress": self = .progress
            case "completed": self = .completed
            case "failed": self = .failed
            case "retrying": self = .retrying
            case "stalled": self = .stalled
            case "cancelled": self = .cancelled
            case "cancel-requested": self = .cancelRequested
            case "removed": self = .removed
            case "paused": self = .paused
            case "resumed": self = .resumed
            case "cleaned": self = .cleaned
            case "limits": self = .limits
            case "scheduled": self = .scheduled
            case "skipped": self = .skipped
            default: self = .other(text)
            }
        }

        public var description: String {
            switch self {
            case .added: "added"
            case .delayed: "delayed"
            case .waiting: "waiting"
            case .active: "active"
            case .progress: "progress"
            case .completed: "completed"
            case .failed: "failed"
            case .retrying: "retrying"
            case .stalled: "stalled"
            case .cancelled: "cancelled"
            case .cancelRequested: "cancel-requested"
            case .removed: "removed"
            case .paused: "paused"
            case .resumed: "resumed"
            case .cleaned: "cleaned"
            case .limits: "limits"
            case .scheduled: "scheduled"
            case .skipped: "skipped"
            case .other(let s): s
            }
        }
    }

    /// The stream entry id (`<ms>-<n>`).
    public let streamID: String
    public let kind: Kind
    /// The job it is about ("" for queue-wide events: paused, resumed, cleaned).
    public let jobID: String
    /// Every field as stored (short names, see `docs/data-model.md`); the typed accessors below
    /// read them.
    public let fields: [String: [UInt8]]

    /// The run's attempt number (`active`, `retrying`, `stalled`, `failed`, `cancelled`).
    public var attempt: Int? { int(.attempt) }
    /// The worker that ran it (`active`).
    public var workerID: String? { text(.worker) }
    /// Why a run failed, was retried or cancelled, with the first 1 KiB of details (`failed`,
    /// `retrying`, `cancelled`, `cancel-requested`, `waiting` after a shutdown).
    public var failure: Job.Failure? {
        text(.reason).map { Job.Failure(reason: $0, details: text(.details) ?? "") }
    }
    /// How long a retried job waits before its next run (`retrying`).
    public var retryDelay: Duration? { int(.retryDelay).map { .milliseconds($0) } }
    /// The first 1 KiB of the result (`completed`); the whole result is in the record while it is
    /// retained.
    public var resultExcerpt: [UInt8]? { fields[EventField.result.rawValue] }
    /// Progress reported by the handler (`progress`).
    public var progress: Job.Progress? {
        text(.progressPercent).flatMap(Double.init).map { Job.Progress(percent: $0, message: text(.progressMessage) ?? "") }
    }
    /// Who asked for the cancel (`cancelled`, `cancel-requested`).
    public var cancelledBy: String? { text(.cancelledBy) }
    /// The state the job left (`removed`, `waiting` after a requeue).
    public var previousState: JobState? { text(.previousState).flatMap(JobState.init(rawValue:)) }
    /// Times the job's lease ran out so far (`stalled`).
    public var stallCount: Int? { int(.stallCount) }
    /// The job's name (`added`, `delayed`).
    public var jobName: String? { text(.name) }
    /// Records removed by a `cleaned` event, and their state.
    public var cleaned: (state: JobState, count: Int)? {
        guard let state = text(.state).flatMap(JobState.init(rawValue:)), let count = int(.count) else { return nil }
        return (state, count)
    }

    /// The schedule that added the job (`scheduled`) or skipped ticks (`skipped`).
    public var scheduleID: String? { text(.schedule) }
    /// The tick's intended time (`scheduled`).
    public var tick: Date? { int(.tick).map { Date(timeIntervalSince1970: Double($0) / 1000) } }
    /// The job's state once added (`scheduled`: `delayed` or `waiting`).
    public var state: JobState? { text(.state).flatMap(JobState.init(rawValue:)) }
    /// What a `skipped` event skipped: why, how many ticks, the first and the last.
    public var skip: (reason: String, count: Int, first: Date, last: Date)? {
        guard let reason = text(.reason), let count = int(.count), let first = int(.tick), let last = int(.lastTick) else { return nil }
        return (reason, count, Date(timeIntervalSince1970: Double(first) / 1000), Date(timeIntervalSince1970: Double(last) / 1000))
    }

    private func text(_ field: EventField) -> String? { self[field.rawValue] }
    private func int(_ field: EventField) -> Int? { text(field).flatMap { Int($0) } }

    /// When it happened (Redis clock, from the stream id).
    public var time: Date {
        let ms = Double(streamID.prefix(while: { $0 != "-" })) ?? 0
        return Date(timeIntervalSince1970: ms / 1000)
    }

    /// A field as text, by its stored name (prefer the typed accessors).
    public subscript(field: String) -> String? {
        fields[field].map { String(decoding: $0, as: UTF8.self) }
    }

    /// Decodes one entry of the stream as `XRANGE` or `XREAD` return it (its id and its flat
    /// field, value list); nil when it has no kind.
    package init?(streamID: String, flat: [RedisReply]) {
        var fields: [String: [UInt8]] = [:]
        var i = 0
        while i + 1 < flat.count {
            if let name = flat[i].string, let value = flat[i + 1].bytes { fields[name] = value }
            i += 2
        }
        guard let kind = fields.removeValue(forKey: EventField.kind.rawValue).map({ String(decoding: $0, as: UTF8.self) }) else { return nil }
        self.streamID = streamID
        self.kind = Kind(kind)
        self.jobID = fields.removeValue(forKey: EventField.job.rawValue).map { String(decoding: $0, as: UTF8.self) } ?? ""
        self.fields = fields
    }
}
