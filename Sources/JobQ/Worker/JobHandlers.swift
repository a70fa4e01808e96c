import Foundation
public import Logging

/// The handlers a ``Worker`` runs, by job name.
///
/// ```swift
/// var handlers = JobHandlers()
/// handlers.register(SendEmail.self) { email, context in
///     try await mailer.send(to: email.to)
/// }
/// handlers.register(name: "resize") { job, context in
///     context.progress(percent: 50)
///     return Array("done".utf8)          // the job's result
/// }
/// ```
public struct JobHandlers: Sendable {
    public typealias Handler = @Sendable (Job, JobContext) async throws -> [UInt8]
    /// Work a worker does as it stops: after its jobs have ended or gone back to waiting, before
    /// `run()` returns. Given the worker's id and logger.
    public typealias StopHook = @Sendable (_ workerID: String, _ logger: Logger) async -> Void
    private(set) var byName: [String: Handler] = [:]
    private(set) var stopHooks: [String: StopHook] = [:]

    public init() {}

    /// A handler for jobs named `name`; what it returns is stored as the job's result.
    public mutating func register(name: String, _ handler: @escaping Handler) {
        byName[name] = handler
    }

    /// A typed handler: the payload is decoded as `P` (a payload that does not decode fails the
    /// job at once, without retries).
    public mutating func register<P: JobParameters>(_ type: P.Type, _ handler: @escaping @Sendable (P, JobContext) async throws -> Void) {
        byName[P.jobName] = { job, context in
            try await handler(try Self.decode(P.self, job), context)
            return []
        }
    }

    /// A typed handler whose result is stored as JSON.
    public mutating func register<P: JobParameters, R: Encodable & Sendable>(
        _ type: P.Type, returning: R.Type,
        _ handler: @escaping @Sendable (P, JobContext) async throws -> R
    ) {
        byName[P.jobName] = { job, context in
            let result = try await handler(try Self.decode(P.self, job), context)
            return try JobPayload.encoding(result).bytes
        }
    }

    public var names: [String] { byName.keys.sorted() }

    /// Runs `hook` when the worker stops (once per `id`, in the order of the ids): handlers that
    /// start processes use it so that nothing they started outlives the worker (the exec
    /// handler waits for its programs here).
    public mutating func onStop(id: String, _ hook: @escaping StopHook) {
        stopHooks[id] = hook
    }

    func handler(for name: String) -> Handler? { byName[name] }

    static func decode<P: JobParameters>(_ type: P.Type, _ job: Job) throws -> P {
        do {
            return try job.payload.decode(P.self)
        } catch {
            throw UnrecoverableError("the payload does not decode as \(P.self): \(error)", reason: "undecodablePayload")
        }
    }
}
