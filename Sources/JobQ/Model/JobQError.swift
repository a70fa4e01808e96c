/// Everything that can go wrong with a queue operation, with the queue, the job and what to do.
///
/// Errors about Redis itself (unreachable, outcome unknown) arrive as ``Code-swift.struct/redis``
/// with the underlying ``RedisError`` in ``redisError``.
public struct JobQError: Error, Sendable, Hashable, CustomStringConvertible {
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        fileprivate enum Kind: String, Sendable {
            case invalidQueueName, invalidJobID, invalidJobName, invalidOptions, invalidSchedule, tooLarge
            case notFound, leaseLost, isActive, notPaused, hasActive, wrongState, paused, queueFull
            case outOfMemory, keyConflict, notReplicated, permissionDenied, redis, timedOut, installation, internalError
        }
        fileprivate let kind: Kind
        public var description: String { kind.rawValue }

        /// The queue name is empty, too long, or holds `{`, `}` or control characters.
        public static let invalidQueueName = Code(kind: .invalidQueueName)
        /// A custom job id is empty, too long, holds control characters, or looks generated.
        public static let invalidJobID = Code(kind: .invalidJobID)
        /// A job name is empty, too long, or holds control characters.
        public static let invalidJobName = Code(kind: .invalidJobName)
        /// An option is out of range (priority, attempts, delay, timeout…).
        public static let invalidOptions = Code(kind: .invalidOptions)
        /// A schedule's id, cron expression, time zone, interval or policy is not valid (the
        /// detail names the field). Nothing was stored.
        public static let invalidSchedule = Code(kind: .invalidSchedule)
        /// A payload, result, checkpoint or error is over its size limit. Nothing was written.
        public static let tooLarge = Code(kind: .tooLarge)
        /// No such job (never added, removed, or trimmed by retention).
        public static let notFound = Code(kind: .notFound)
        /// The job is no longer active with this run's lease: the result was not stored.
        public static let leaseLost = Code(kind: .leaseLost)
        /// Refused: the job is running. Cancel it instead.
        public static let isActive = Code(kind: .isActive)
        /// Refused: the queue must be paused first (or use force).
        public static let notPaused = Code(kind: .notPaused)
        /// Refused: jobs are running (wait for them, or use force).
        public static let hasActive = Code(kind: .hasActive)
        /// Refused: the job is not in a state this operation accepts.
        public static let wrongState = Code(kind: .wrongState)
        /// The queue is paused.
        public static let paused = Code(kind: .paused)
        /// Refused: the queue holds its maximum of waiting and delayed jobs
        /// (``QueueLimits/maxWaiting``). Nothing was written.
        public static let queueFull = Code(kind: .queueFull)
        /// Redis is out of memory (`OOM`, `maxmemory` reached with `noeviction`): nothing was written.
        public static let outOfMemory = Code(kind: .outOfMemory)
        /// A key of the queue holds a value of another type than jobq's (`WRONGTYPE`): something
        /// other than jobq wrote under the queue's `jobq:{name}:` prefix. Nothing was changed.
        public static let keyConflict = Code(kind: .keyConflict)
        /// A durable add (``QueueSettings/replicasToConfirmAdds``) was not confirmed by enough
        /// replicas in time: the job is stored on the primary, but a failover could lose it.
        public static let notReplicated = Code(kind: .notReplicated)
        /// The Redis user may not run a command or touch a key jobq needs (`NOPERM`): the
        /// detail names which. Nothing was changed.
        public static let permissionDenied = Code(kind: .permissionDenied)
        /// Redis could not be reached, or the outcome of a call is unknown: see ``redisError``.
        public static let redis = Code(kind: .redis)
        /// Waiting (for a job's outcome) took longer than allowed.
        public static let timedOut = Code(kind: .timedOut)
        /// jobq's Lua scripts could not be read from its resource bundle.
        public static let installation = Code(kind: .installation)
        /// A script answered something jobq does not understand: a bug in jobq.
        public static let internalError = Code(kind: .internalError)
    }

    public let code: Code
    public let queue: String?
    public let jobID: String?
    /// What happened.
    public let detail: String
    /// The Redis failure behind a ``Code-swift.struct/redis`` error.
    public let redisError: RedisError?

    public init(_ code: Code, queue: String? = nil, jobID: String? = nil, detail: String, redisError: RedisError? = nil) {
        self.code = code
        self.queue = queue
        self.jobID = jobID
        self.detail = detail
        self.redisError = redisError
    }

    init(redis error: RedisError, queue: String?, jobID: String? = nil) {
        self.init(.redis, queue: queue, jobID: jobID, detail: error.description, redisError: error)
    }

    /// What to do about it.
    public var hint: String {
        switch code.kind {
        case .invalidQueueName: "use 1–100 bytes without {, } or control characters"
        case .invalidJobID: "use 1–200 bytes without control characters, not in jobq's generated 26-character format; or let jobq generate the id"
        case .invalidJobName: "use 1–200 bytes without control characters"
        case .invalidOptions: "see JobOptions for the allowed ranges"
        case .invalidSchedule: "fix the field named; docs/schedules.md gives the cron syntax, the time zones and the policies"
        case .tooLarge: "store large data elsewhere (object storage) and put its address in the job, or raise the limit in QueueSettings"
        case .notFound: "check the queue and id; finished records are kept only up to the queue's retention"
        case .leaseLost: "the job was recovered by the reaper or cancelled; make handlers idempotent (use the execution id)"
        case .isActive: "cancel the job, or wait until it finishes"
        case .notPaused: "pause the queue first, or force"
        case .hasActive: "wait for running jobs to finish (or cancel them), or force"
        case .wrongState: "check the job's state with inspect"
        case .paused: "resume the queue"
        case .queueFull:
            "add again once workers have drained some (back off and retry), or raise the limit: jobq-admin limits <queue> --max-waiting N"
        case .outOfMemory: "raise Redis maxmemory, clean finished jobs, or lower retention; nothing was written"
        case .keyConflict:
            "another program wrote under this queue's keys; find the key with `redis-cli --scan --pattern 'jobq:{<queue>}:*'` and `TYPE`, then rename or delete it (or use another queue name)"
        case .notReplicated:
            "check the replicas (INFO replication); the job is on the primary and will run unless a failover happens first; add again with the same id to confirm (dedup makes that safe)"
        case .permissionDenied:
            "grant it to this Redis user (config/users.acl lists what the producer, worker and admin roles each need), or connect as a user of the right role"
        case .redis: redisError?.hint ?? "check Redis"
        case .timedOut: "wait longer, or check that workers are running for this queue"
        case .installation: "ship the jobq_JobQ.resources bundle next to the binary"
        case .internalError: "report this as a bug in jobq, with the message"
        }
    }

    public var description: String {
        var text = "jobq \(code)"
        if let queue { text += " (queue \(queue)" + (jobID.map { ", job \($0)" } ?? "") + ")" } else if let jobID { text += " (job \(jobID))" }
        if code == .redis { return text + ": " + detail }
        return text + ": \(detail) (\(hint))"
    }
}
