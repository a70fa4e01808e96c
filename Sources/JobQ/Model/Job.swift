public import Foundation

/// A job's record as stored in Redis (DESIGN §2), decoded.
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

    /// Decodes a record (`HGETALL` of `jobq:{q}:job:<id>`). Returns nil if it has no state field.
    init?(id: String, queue: String, fields: [String: [UInt8]]) {
        func text(_ f: String) -> String? { fields[f].map { String(decoding: $0, as: UTF8.self) } }
        func int(_ f: String) -> Int? { text(f).flatMap { Int($0) } }
        func date(_ f: String) -> Date? { text(f).flatMap { Double($0) }.map { Date(timeIntervalSince1970: $0 / 1000) } }
        guard let s = text("s"), let state = JobState(rawValue: s) else { return nil }
        self.id = id
        self.queue = queue
        self.state = state
        name = text("n") ?? ""
        payload = JobPayload(bytes: fields["d"] ?? [], encoding: text("e") == "b" ? .bytes : .json)
        options = JobOptions(fields: fields, id: id)
        attemptsMade = int("am") ?? 0
        stallCount = int("sc") ?? 0
        if let pp = text("pp").flatMap(Double.init) {
            progress = Progress(percent: pp, message: text("pm") ?? "")
        } else {
            progress = nil
        }
        checkpoint = fields["cp"]
        result = fields["r"]
        error = text("er").map { Failure(reason: $0, details: text("ed") ?? "") }
        previousError = text("pe").map { Failure(reason: $0, details: text("pd") ?? "") }
        createdAt = date("ct") ?? Date(timeIntervalSince1970: 0)
        startedAt = date("st")
        finishedAt = date("ft")
        dueAt = date("du")
        workerID = text("w")
        executionID = text("x")
        cancelRequested = text("cr") == "1"
        cancelReason = text("cx")
        cancelRequestedBy = text("cb")
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
