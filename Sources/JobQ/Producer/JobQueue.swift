import Foundation

/// The producer's handle on one queue: add jobs (one, many, typed), cancel them, wait for their
/// outcome, follow their events.
///
/// ```swift
/// let queue = try JobQueue(name: "emails", client: client)
/// let added = try await queue.add(SendEmail(to: "a@example.com"), options: .init(attempts: 5))
/// let outcome = try await queue.result(of: added.id, timeout: .seconds(30))
/// ```
/// - Important: every add carries an id made before sending, so a retried add (after an unknown
///   outcome on a dropped connection) creates the job at most once.
public final class JobQueue: Sendable {
    let core: QueueCore

    public var name: String { core.name }
    public var client: RedisClient { core.client }
    public var settings: QueueSettings { core.settings }
    public var keys: QueueKeys { core.keys }

    /// - Throws: ``JobQError/Code-swift.struct/invalidQueueName`` for a bad name;
    ///   ``JobQError/Code-swift.struct/installation`` when jobq's scripts cannot be read.
    public init(name: String, client: RedisClient, settings: QueueSettings = QueueSettings()) throws(JobQError) {
        core = try QueueCore(name: name, client: client, settings: settings)
    }

    /// What an add did.
    public struct AddResult: Sendable, Hashable {
        public let id: String
        /// False when a job with this id existed already (nothing was written).
        public let created: Bool
        /// The job's state: where it went, or where the existing job is.
        public let state: JobState
    }

    /// Loads every jobq script on the client's connections now (and after each reconnect), so
    /// pipelined calls never meet `NOSCRIPT`. Returns each script's SHA1 by name (`addJob-9`…).
    @discardableResult
    public func preloadScripts() async throws(JobQError) -> [String: String] {
        do {
            try await client.load(core.scripts.all)
        } catch {
            throw JobQError(redis: error, queue: name)
        }
        var shas: [String: String] = [:]
        for script in core.scripts.all { shas[script.name] = script.sha }
        return shas
    }

    /// A job for ``addBulk(_:)``.
    public struct NewJob: Sendable {
        public var name: String
        public var payload: JobPayload
        public var options: JobOptions

        public init(name: String, payload: JobPayload, options: JobOptions = .default) {
            self.name = name
            self.payload = payload
            self.options = options
        }

        public init<P: JobParameters>(_ parameters: P, options: JobOptions = .default) throws(JobQError) {
            self.init(name: P.jobName, payload: try .encoding(parameters), options: options)
        }
    }

    /// Adds one job.
    /// - Throws: ``JobQError`` — invalid name, id or options and oversized payloads are refused
    ///   before anything is written; `outOfMemory` when Redis is full; `redis` when Redis stays
    ///   unreachable past the retry deadline.
    @discardableResult
    public func add(name: String, payload: JobPayload, options: JobOptions = .default) async throws(JobQError) -> AddResult {
        let add = try prepare(NewJob(name: name, payload: payload, options: options))
        var batch = RedisBatch()
        let registration = core.registration()
        if let registration { batch.append(registration) }
        batch.append(add)
        if settings.replicasToConfirmAdds > 0 { batch.append(waitForReplicas) }
        let replies = try await core.execute(batch, idempotent: true)
        let result = try decode(add, replies[registration == nil ? 0 : 1])
        if settings.replicasToConfirmAdds > 0 { try checkReplicated(replies.last, ids: [result.id]) }
        return result
    }

    /// `WAIT n ms`: on the add's own connection (the client keeps a flight on one connection, and
    /// in cluster mode sends a keyless WAIT to the node of the command before it).
    private var waitForReplicas: RedisCommand {
        RedisCommand("WAIT", settings.replicasToConfirmAdds, max(1, settings.replicaConfirmTimeout.milliseconds))
    }

    private func checkReplicated(_ reply: RedisReply?, ids: [String]) throws(JobQError) {
        let confirmed = reply?.int ?? 0
        guard confirmed < settings.replicasToConfirmAdds else { return }
        let what = ids.count == 1 ? "the add" : "\(ids.count) adds"
        throw JobQError(
            .notReplicated, queue: name, jobID: ids.count == 1 ? ids[0] : nil,
            detail:
                "\(what) reached \(confirmed) of \(settings.replicasToConfirmAdds) replicas within \(settings.replicaConfirmTimeout)\(reply?.errorMessage.map { " (\($0))" } ?? "")"
        )
    }

    /// Adds a typed job: its payload is `parameters` as JSON, its name `P.jobName`.
    @discardableResult
    public func add<P: JobParameters>(_ parameters: P, options: JobOptions = .default) async throws(JobQError) -> AddResult {
        try await add(name: P.jobName, payload: try .encoding(parameters), options: options)
    }

    /// Adds many jobs, in order; one result per job. Up to 100 jobs go in one script call
    /// (`addJobs-9`: each job checked, deduplicated and written whole or not at all, as a
    /// single add would be), and up to 10,000 in one flight. A job that fails validation gets
    /// its error and the others are still added.
    /// - Throws: only when Redis fails for the whole flight.
    public func addBulk(_ jobs: [NewJob]) async throws(JobQError) -> [Result<AddResult, JobQError>] {
        var results: [Result<AddResult, JobQError>] = []
        results.reserveCapacity(jobs.count)
        guard !jobs.isEmpty else { return results }
        // While a flight runs, the next is built (validation, ids, arguments); it is sent only
        // once the one before has answered, so a failed flight stops the rest and the order holds.
        var start = 0
        var next: BulkFlight? = bulkFlight(jobs[0..<min(10_000, jobs.count)])
        while let flight = next {
            async let sent = flight.send(core)
            start += flight.results.count
            next = start < jobs.count ? bulkFlight(jobs[start..<min(start + 10_000, jobs.count)]) : nil
            results.append(contentsOf: finish(flight, try await sent.get()))
        }
        return results
    }

    /// One flight of `addBulk`: the valid jobs in calls of at most 100 jobs and about 4 MB of
    /// payload (bounded work for Redis per call), and the invalid ones' errors.
    struct BulkFlight: Sendable {
        var results: [Result<AddResult, JobQError>?]
        var calls: [(offsets: [Int], call: ScriptCall<[Result<AddResult, JobQError>]>)] = []
        var batch = RedisBatch()
        var hasRegistration = false
        var waitsForReplicas = false

        func send(_ core: QueueCore) async -> Result<[RedisReply], JobQError> {
            guard !calls.isEmpty else { return .success([]) }
            do {
                return .success(try await core.execute(batch, idempotent: true))
            } catch {
                return .failure(error)
            }
        }
    }

    private func bulkFlight(_ chunk: ArraySlice<NewJob>) -> BulkFlight {
        var flight = BulkFlight(results: Array(repeating: nil, count: chunk.count))
        var part: [(id: String, job: NewJob)] = []
        var offsets: [Int] = []
        var bytes = 0
        func flush() {
            guard !part.isEmpty else { return }
            flight.calls.append((offsets, core.addJobsCall(part)))
            part = []
            offsets = []
            bytes = 0
        }
        for (offset, job) in chunk.enumerated() {
            do {
                let id = try validatedID(job)
                if part.count == QueueCore.jobsPerAdd || (bytes > 0 && bytes + job.payload.bytes.count > 4 << 20) { flush() }
                part.append((id, job))
                offsets.append(offset)
                bytes += job.payload.bytes.count
            } catch {
                flight.results[offset] = .failure(error)
            }
        }
        flush()
        guard !flight.calls.isEmpty else { return flight }
        if let registration = core.registration() {
            flight.batch.append(registration)
            flight.hasRegistration = true
        }
        for c in flight.calls { flight.batch.append(c.call) }
        if settings.replicasToConfirmAdds > 0 {
            flight.batch.append(waitForReplicas)
            flight.waitsForReplicas = true
        }
        return flight
    }

    /// A flight's results from its replies.
    private func finish(_ flight: BulkFlight, _ replies: [RedisReply]) -> [Result<AddResult, JobQError>] {
        var results = flight.results
        guard !flight.calls.isEmpty else { return results.map { $0! } }
        let first = flight.hasRegistration ? 1 : 0
        for (i, c) in flight.calls.enumerated() {
            let reply = replies[first + i]
            do {
                try core.check(reply, script: c.call.script, jobID: nil)
                for (offset, result) in zip(c.offsets, try c.call.decode(reply)) { results[offset] = result }
            } catch {
                for offset in c.offsets { results[offset] = .failure(error) }
            }
        }
        if flight.waitsForReplicas {
            let ids = flight.calls.flatMap { c in c.offsets.compactMap { try? results[$0]?.get().id } }
            do {
                try checkReplicated(replies.last, ids: ids)
            } catch {
                // Every job of the flight that was written is unconfirmed.
                for c in flight.calls {
                    for offset in c.offsets {
                        if case .success(let added) = results[offset] {
                            results[offset] = .failure(JobQError(.notReplicated, queue: name, jobID: added.id, detail: error.detail))
                        }
                    }
                }
            }
        }
        return results.map { $0! }
    }

    /// Validates a job and builds its add call (its id made here, before sending, so a resend
    /// after a lost reply creates it once).
    func prepare(_ job: NewJob) throws(JobQError) -> ScriptCall<AddResult> {
        core.addJobCall(id: try validatedID(job), job: job)
    }

    /// Validates a job; its id (given, or made now).
    private func validatedID(_ job: NewJob) throws(JobQError) -> String {
        try Self.validate(jobName: job.name, queue: name)
        try job.options.validate(queue: name)
        guard job.payload.bytes.count <= settings.maxPayloadBytes else {
            throw JobQError(
                .tooLarge, queue: name, jobID: job.options.jobID,
                detail: "the payload is \(job.payload.bytes.count) bytes; the limit is \(settings.maxPayloadBytes) bytes")
        }
        return job.options.jobID ?? JobID.generate()
    }

    /// An add's reply from a pipelined batch: error replies first (`OOM`, `WRONGTYPE`).
    private func decode(_ add: ScriptCall<AddResult>, _ reply: RedisReply) throws(JobQError) -> AddResult {
        try core.check(reply, script: add.script, jobID: add.jobID)
        return try add.decode(reply)
    }

    /// Checks a job name: 1–200 bytes, no control characters.
    public static func validate(jobName: String, queue: String) throws(JobQError) {
        let bytes = jobName.utf8.count
        guard bytes >= 1, bytes <= 200 else {
            throw JobQError(.invalidJobName, queue: queue, detail: "a job name is 1 to 200 bytes long; this one is \(bytes)")
        }
        if jobName.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
            throw JobQError(.invalidJobName, queue: queue, detail: "a job name may not contain control characters")
        }
    }

    // MARK: - Cancel

    /// What a cancel did (`docs/job-lifecycle.md`).
    public enum CancelOutcome: Sendable, Hashable, CustomStringConvertible {
        /// It was waiting or delayed: it ended `cancelled` at once.
        case cancelled
        /// It is running: the request is stored in its record and was published; `listeners` is
        /// how many workers' subscribers received it (not proof the owner heard: its next lease
        /// renewal reports the request anyway).
        case cancelRequested(listeners: Int)
        /// It had already ended in this state.
        case alreadyFinished(JobState)
        case notFound

        public var description: String {
            switch self {
            case .cancelled: "cancelled"
            case .cancelRequested(let n): "cancel requested (\(n) listener\(n == 1 ? "" : "s"))"
            case .alreadyFinished(let s): "already \(s)"
            case .notFound: "not found"
            }
        }
    }

    /// Cancels a job from any process.
    /// - Parameters:
    ///   - reason: stored in the record and the event.
    ///   - requestedBy: who asked (defaults to this host and process).
    public func cancel(_ id: String, reason: String = "cancelled", requestedBy: String? = nil) async throws(JobQError) -> CancelOutcome {
        try await cancel([id], reason: reason, requestedBy: requestedBy)[0]
    }

    /// Cancels many jobs; one outcome per id, in order. Ids go in batches of up to 200, each
    /// one script call (one round trip), so a bulk cancel finishes before workers start many of
    /// the jobs it is cancelling.
    public func cancel(_ ids: [String], reason: String = "cancelled", requestedBy: String? = nil) async throws(JobQError) -> [CancelOutcome] {
        let by = requestedBy ?? Self.processDescription
        let sharded = settings.shardedPubSub || client.configuration.isCluster
        var outcomes: [CancelOutcome] = []
        outcomes.reserveCapacity(ids.count)
        var start = 0
        while start < ids.count {
            let chunk = Array(ids[start..<min(start + core.idBatch, ids.count)])
            outcomes += try await core.call(core.cancelJobsCall(chunk, reason: reason, requestedBy: by, sharded: sharded))
            start += chunk.count
        }
        return outcomes
    }

    static let processDescription: String = {
        let host = ProcessInfo.processInfo.hostName
        return "\(host):\(ProcessInfo.processInfo.processIdentifier)"
    }()

    // MARK: - Outcomes and events

    /// A job's final outcome.
    public enum Outcome: Sendable, Hashable {
        /// The handler's result (the full result from the record, or the event's excerpt of up
        /// to ``QueueSettings/eventExcerptBytes`` when retention already dropped the record).
        case completed(result: [UInt8])
        case failed(Job.Failure)
        case cancelled(reason: String)
        /// Removed by an operator before it finished.
        case removed
    }

    /// Waits for a job's outcome: returns at once if it has finished, else follows the queue's
    /// events until it does.
    /// - Throws: `notFound` (no such job, or its record and event are both gone); `timedOut`.
    public func result(of id: String, timeout: Duration) async throws(JobQError) -> Outcome {
        let deadline = ContinuousClock.now + timeout
        let reader = QueueEventReader(core: core)
        defer { Task { await reader.close() } }
        // Position first, record second: an outcome after the position is in the events.
        try await reader.start(at: .end)
        guard let first = try await inspector.job(id) else {
            throw JobQError(.notFound, queue: name, jobID: id, detail: "no such job (never added, removed, or dropped by retention)")
        }
        if let outcome = Self.outcome(of: first) { return outcome }
        while true {
            let remaining = deadline - ContinuousClock.now
            if remaining <= .zero {
                throw JobQError(.timedOut, queue: name, jobID: id, detail: "no outcome within \(timeout)")
            }
            for element in try await reader.next(wait: min(remaining, .seconds(5))) {
                switch element {
                case .gap:
                    // Events were trimmed before we read them: the record tells.
                    guard let job = try await inspector.job(id) else {
                        throw JobQError(
                            .notFound, queue: name, jobID: id, detail: "the job's record and its final event are both gone (retention and a full events stream)"
                        )
                    }
                    if let outcome = Self.outcome(of: job) { return outcome }
                case .event(let event) where event.jobID == id:
                    switch event.kind {
                    case .completed:
                        if let job = try await inspector.job(id), let outcome = Self.outcome(of: job) { return outcome }
                        return .completed(result: event.resultExcerpt ?? [])
                    case .failed:
                        return .failed(event.failure ?? Job.Failure(reason: "", details: ""))
                    case .cancelled:
                        return .cancelled(reason: event.failure?.reason ?? "")
                    case .removed:
                        return .removed
                    default:
                        break
                    }
                case .event:
                    break
                }
            }
        }
    }

    /// The outcome stored in a record; nil while unfinished.
    static func outcome(of job: Job) -> Outcome? {
        switch job.state {
        case .completed: return .completed(result: job.result ?? [])
        case .failed: return .failed(job.error ?? Job.Failure(reason: "failed", details: ""))
        case .cancelled: return .cancelled(reason: job.cancelReason ?? job.error?.details ?? "")
        default: return nil
        }
    }

    /// The queue's events from now on (or from the oldest kept), with `.gap` when some were
    /// trimmed before they could be read.
    public func events(from start: QueueEvents.Start = .end) -> QueueEvents {
        QueueEvents(core: core, start: start)
    }

    /// An inspector for this queue.
    public var inspector: QueueInspector { QueueInspector(core: core) }
}
