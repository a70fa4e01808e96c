public import Foundation

/// A job's record as stored in Redis, decoded (its fields: `JobField`, `docs/data-model.md`).
public struct Job: Sendable, Hashable {
    public struct Progress: Sendable, Hashable {
        /// 0…100.
        public var percent: Double
        public var message: String
    }

    /// Why a run failed (or why the job was cancelled).
    public struct Failure: Sendable, Hashable, CustomStringConvertible {
        /// A short reason: `timeout`, `stalled`, `cancelled`, `unknownJobName`, an error type…
        public var reason: String
        /// Details: the error's description, captured output…
        public var details: String
        public var description: String { details.isEmpty ? reason : "\(reason): \(details)" }
    }

    public let id: String
    public let queue: String
    public let name: String
    public let payload: JobPayload
    public let state: JobState
    public let options: JobOptions
    /// Runs started so far (the current one included while active).
    public let attemptsMade: Int
    /// Times the job's lease ran out (its worker died or hung). Never counted in attempts.
    public let stallCount: Int
    public let progress: Progress?
    /// The last checkpoint saved by a run, for the next attempt to resume from.
    public let checkpoint: [UInt8]?
    /// What the handler returned (completed jobs).
    public let result: [UInt8]?
    /// The last failure (failed jobs; retried jobs until they complete).
    public let error: Failure?
    /// The failure before ``error`` (kept by retries, manual ones included).
    public let previousError: Failure?
    public let createdAt: Date
    /// When the current or last run started.
    public let startedAt: Date?
    public let finishedAt: Date?
    /// When a delayed job becomes runnable.
    public let dueAt: Date?
    /// The worker running it (or that ran it last).
    public let workerID: String?
    /// The lease token of the current or last run: handlers use it to be idempotent.
    public let executionID: String?
    public let cancelRequested: Bool
    public let cancelReason: String?
    public let cancelRequestedBy: String?
    /// The schedule that made this job (`docs/schedules.md`), nil for a job added directly.
    public let scheduleID: String?
    /// The tick's intended time, for a job a schedule made.
    public let scheduledFor: Date?

    /// Decodes a record (`HGETALL` of `jobq:{q}:job:<id>`). Returns nil if it has no state field.
    init?(id: String, queue: String, fields: [String: [UInt8]]) {
        func text(_ f: JobField) -> String? { fields[f.rawValue].map { String(decoding: $0, as: UTF8.self) } }
        func int(_ f: JobField) -> Int? { text(f).flatMap { Int($0) } }
        func date(_ f: JobField) -> Date? { text(f).flatMap { Double($0) }.map { Date(timeIntervalSince1970: $0 / 1000) } }
        guard let s = text(.state), let state = JobState(rawValue: s) else { return nil }
        self.id = id
        self.queue = queue
        self.state = state
        name = text(.name) ?? ""
        payload = JobPayload(bytes: fields[JobField.payload.rawValue] ?? [], encoding: text(.encoding) == JobField.bytesEncoding ? .bytes : .json)
        options = JobOptions(fields: fields, id: id)
        attemptsMade = int(.attemptsMade) ?? 0
        stallCount = int(.stallCount) ?? 0
        if let pp = text(.progressPercent).flatMap(Double.init) {
            progress = Progress(percent: pp, message: text(.progressMessage) ?? "")
        } else {
            progress = nil
        }
        checkpoint = fields[JobField.checkpoint.rawValue]
        result = fields[JobField.result.rawValue]
        error = text(.errorReason).map { Failure(reason: $0, details: text(.errorDetails) ?? "") }
        previousError = text(.previousReason).map { Failure(reason: $0, details: text(.previousDetails) ?? "") }
        createdAt = date(.createdAt) ?? Date(timeIntervalSince1970: 0)
        startedAt = date(.startedAt)
        finishedAt = date(.finishedAt)
        dueAt = date(.dueAt)
        workerID = text(.worker)
        executionID = text(.execution)
        cancelRequested = text(.cancelRequested) == JobField.flagSet
        cancelReason = text(.cancelReason)
        cancelRequestedBy = text(.cancelRequestedBy)
        scheduleID = text(.schedule)
        scheduledFor = date(.tick)
    }

    /// Decodes a flat field/value reply (`HGETALL`, or a script returning a record).
    init?(id: String, queue: String, flat: [RedisReply]) {
        var fields: [String: [UInt8]] = [:]
        var i = 0
        while i + 1 < flat.count {
            if let name = flat[i].string, let value = flat[i + 1].bytes { fields[name] = value }
            i += 2
        }
        self.init(id: id, queue: queue, fields: fields)
    }

    /// The payload decoded as `T` (JSON).
    public func decode<T: Decodable>(_ type: T.Type) throws -> T { try payload.decode(type) }

    /// The result as UTF-8 text.
    public var resultText: String? { result.map { String(decoding: $0, as: UTF8.self) } }
}
