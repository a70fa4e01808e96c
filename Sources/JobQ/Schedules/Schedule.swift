public import Foundation

/// A recurring job as stored (`docs/schedules.md`): when it fires, its policies, the job each
/// tick adds, and where it stands.
public struct Schedule: Sendable, Hashable {
    /// One tick's job.
    public struct Run: Sendable, Hashable {
        /// The tick's intended time.
        public let tick: Date
        public let jobID: String
        /// The job's state now; nil when its record is gone (trimmed by retention, removed).
        public let state: JobState?
    }

    public let id: String
    public let queue: String
    public let spec: ScheduleSpec
    public let options: ScheduleOptions
    /// The job every tick adds: name, payload and options.
    public let jobName: String
    public let payload: JobPayload
    public let jobOptions: JobOptions
    public let isPaused: Bool
    /// The next tick not yet made into a job (nil: paused, or the expression matches no time).
    public let nextTick: Date?
    /// The latest tick's job, and the one before it.
    public let latest: Run?
    public let previous: Run?
    /// Jobs made and ticks skipped since the schedule was created.
    public let fired: Int
    public let skipped: Int
    /// Why the latest tick was skipped (`misfire`, `overlap`, `queueFull`), and when.
    public let lastSkipReason: String?
    public let lastSkippedAt: Date?
    public let createdAt: Date?
    public let updatedAt: Date?

    /// The next run to start: the latest tick's job while it waits for its time, else the next
    /// tick. Nil while paused.
    public var nextRun: Date? {
        if isPaused { return nil }
        if let latest, latest.state == .delayed { return latest.tick }
        return nextTick
    }

    /// The latest run that is due (its job waits, runs or ended).
    public var lastRun: Run? {
        if let latest, latest.state != .delayed { return latest }
        return previous
    }

    /// The next `count` runs from ``nextRun`` (at most 100).
    public func upcoming(_ count: Int) -> [Date] {
        guard let first = nextRun, let timing = try? spec.timing() else { return [] }
        var out = [first]
        var t = first.epochMs
        while out.count < min(count, 100), let n = timing.next(after: t) {
            out.append(Date(epochMs: n))
            t = n
        }
        return Array(out.prefix(max(count, 0)))
    }
}

/// A schedule's hash decoded (`ScheduleField`), as the scheduler and the readers need it.
struct StoredSchedule: Sendable {
    let id: String
    let spec: ScheduleSpec
    let options: ScheduleOptions
    let jobName: String
    let payload: JobPayload
    /// The job's record fields (options, defaults left out), as name, value pairs.
    let optionFields: [(String, String)]
    let priority: Int
    let version: String
    let nextTick: Int64?
    let paused: Bool
    let pendingJob: String?
    let pendingTick: Int64?
    let lastJob: String?
    let lastTick: Int64?
    let fired: Int
    let skipped: Int
    let skipReason: String?
    let skippedAt: Int64?
    let createdAt: Int64?
    let updatedAt: Int64?

    /// Nil when the hash is not a schedule jobq wrote (a field missing or unreadable).
    init?(id: String, fields: [String: [UInt8]]) {
        func text(_ f: ScheduleField) -> String? { fields[f.rawValue].map { String(decoding: $0, as: UTF8.self) } }
        func int(_ f: ScheduleField) -> Int64? { text(f).flatMap { Int64($0) } }
        guard let kind = text(.kind), let expression = text(.expression), let name = text(.name), let version = text(.version) else {
            return nil
        }
        switch kind {
        case "cron": spec = .cron(expression, timeZone: text(.zone) ?? "UTC")
        case "every":
            guard let ms = Int64(expression) else { return nil }
            spec = .every(.milliseconds(ms), startingAt: int(.anchor).map { Date(epochMs: $0) })
        default: return nil
        }
        var options = ScheduleOptions()
        if let m = text(.misfire) {
            guard let policy = MisfirePolicy(m) else { return nil }
            options.misfire = policy
        }
        if let o = text(.overlap) {
            guard let policy = OverlapPolicy(rawValue: o) else { return nil }
            options.overlap = policy
        }
        if let j = int(.jitter) { options.jitter = .milliseconds(j) }
        if let g = int(.grace) { options.misfireGrace = .milliseconds(g) }
        self.id = id
        self.options = options
        self.jobName = name
        payload = JobPayload(bytes: fields[ScheduleField.payload.rawValue] ?? [], encoding: text(.encoding) == JobField.bytesEncoding ? .bytes : .json)
        if let o = fields[ScheduleField.options.rawValue] {
            guard let pairs = try? JSONDecoder().decode([[String]].self, from: Data(o)), pairs.allSatisfy({ $0.count == 2 }) else { return nil }
            optionFields = pairs.map { ($0[0], $0[1]) }
        } else {
            optionFields = []
        }
        priority = Int(int(.priority) ?? 0)
        self.version = version
        nextTick = int(.nextTick)
        paused = text(.paused) == JobField.flagSet
        pendingJob = text(.pendingJob)
        pendingTick = int(.pendingTick)
        lastJob = text(.lastJob)
        lastTick = int(.lastTick)
        fired = Int(int(.fired) ?? 0)
        skipped = Int(int(.skipped) ?? 0)
        skipReason = text(.skipReason)
        skippedAt = int(.skippedAt)
        createdAt = int(.createdAt)
        updatedAt = int(.updatedAt)
    }

    init?(id: String, flat: [RedisReply]) {
        var fields: [String: [UInt8]] = [:]
        var i = 0
        while i + 1 < flat.count {
            if let name = flat[i].string, let value = flat[i + 1].bytes { fields[name] = value }
            i += 2
        }
        self.init(id: id, fields: fields)
    }

    /// The job options the ticks' jobs get.
    var jobOptions: JobOptions {
        var fields: [String: [UInt8]] = [:]
        for (name, value) in optionFields { fields[name] = Array(value.utf8) }
        return JobOptions(fields: fields, id: "x")
    }

    /// The record fields of a tick's job: name, payload, encoding, options.
    var recordFields: [any RedisArgument] {
        var out: [any RedisArgument] = [JobField.name.rawValue, jobName, JobField.payload.rawValue, payload.bytes]
        if payload.encoding == .bytes {
            out.append(JobField.encoding.rawValue)
            out.append(JobField.bytesEncoding)
        }
        for (name, value) in optionFields {
            out.append(name)
            out.append(value)
        }
        return out
    }

    func schedule(queue: String, states: [String: JobState]) -> Schedule {
        Schedule(
            id: id, queue: queue, spec: spec, options: options, jobName: jobName, payload: payload, jobOptions: jobOptions,
            isPaused: paused, nextTick: paused ? nil : nextTick.map { Date(epochMs: $0) },
            latest: pendingJob.flatMap { job in pendingTick.map { Schedule.Run(tick: Date(epochMs: $0), jobID: job, state: states[job]) } },
            previous: lastJob.flatMap { job in lastTick.map { Schedule.Run(tick: Date(epochMs: $0), jobID: job, state: states[job]) } },
            fired: fired, skipped: skipped, lastSkipReason: skipReason, lastSkippedAt: skippedAt.map { Date(epochMs: $0) },
            createdAt: createdAt.map { Date(epochMs: $0) }, updatedAt: updatedAt.map { Date(epochMs: $0) })
    }
}
