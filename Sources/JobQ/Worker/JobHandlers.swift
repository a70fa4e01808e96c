import Foundation

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
    private(set) var byName: [String: Handler] = [:]

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
    public mutating func register<P: JobParameters, R: Encodable & Sendable>(_ type: P.Type, returning: R.Type,
                                                                           _ handler: @escaping @Sendable (P, JobContext) async throws -> R) {
        byName[P.jobName] = { job, context in
            let result = try await handler(try Self.decode(P.self, job), context)
            return try JobPayload.encoding(result).bytes
        }
    }

    public var names: [String] { byName.keys.sorted() }

    func handler(for name: String) -> Handler? { byName[name] }

    static func decode<P: JobParameters>(_ type: P.Type, _ job: Job) throws -> P {
        do {
            return try job.payload.decode(P.self)
        } catch {
            throw UnrecoverableError("the payload does not decode as \(P.self): \(error)", reason: "undecodablePayload")
        }
    }
}
