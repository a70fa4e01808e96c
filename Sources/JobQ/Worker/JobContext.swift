import Foundation
public import Logging
import Synchronization

/// What a handler knows about the run it is in, and how it talks back: progress, checkpoints,
/// cancellation.
///
/// - Important: a job may run more than once (a crash, a lost lease): use ``executionID`` and the
///   job id to make side effects idempotent.
public final class JobContext: Sendable {
    public let job: Job
    public var jobID: String { job.id }
    public var name: String { job.name }
    public var queue: String { job.queue }
    /// 1 for the first run.
    public var attempt: Int { job.attemptsMade }
    /// This run's id (its lease token).
    public let executionID: String
    public let workerID: String
    /// Logger with metadata: queue, job id, attempt, worker id. Made on first use: setting
    /// metadata costs (swift-log's stream handler re-renders it per key), and most handlers of
    /// a busy queue never log.
    public var logger: Logger {
        loggerState.withLock { cached in
            if let cached { return cached }
            var logger = baseLogger
            logger[metadataKey: "queue"] = "\(job.queue)"
            logger[metadataKey: "job"] = "\(job.id)"
            logger[metadataKey: "attempt"] = "\(job.attemptsMade)"
            cached = logger
            return logger
        }
    }
    private let baseLogger: Logger
    private let loggerState = Mutex<Logger?>(nil)
    /// The checkpoint saved by an earlier run of this job (resume from it), or by this run.
    public var lastCheckpoint: [UInt8]? { checkpointState.withLock { $0 } }

    let cancellation: JobCancellation
    private let core: QueueCore
    private let progressInterval: Duration
    private let checkpointState: Mutex<[UInt8]?>
    private let progressState = Mutex<ProgressState>(ProgressState())

    private struct ProgressState {
        var pending: (Double, String)?
        var lastSent: ContinuousClock.Instant?
        var flushScheduled = false
        /// The last write, so writes land in order and the run's end can wait for them.
        var chain: Task<Void, Never>?
        var ended = false
    }

    init(job: Job, executionID: String, workerID: String, core: QueueCore, cancellation: JobCancellation, progressInterval: Duration, logger: Logger) {
        self.job = job
        self.executionID = executionID
        self.workerID = workerID
        self.core = core
        self.cancellation = cancellation
        self.progressInterval = progressInterval
        self.checkpointState = Mutex(job.checkpoint)
        self.baseLogger = logger
    }

    // MARK: Cancellation

    /// True once the job's token fired (cancelled, timed out, shutting down, lease lost).
    public var isCancelled: Bool { cancellation.isFired }
    /// Why the token fired, if it has.
    public var cancellationReason: CancellationReason? { cancellation.reason }

    /// Throws ``JobCancelledError`` once the token has fired.
    public func checkCancellation() throws(JobCancelledError) {
        if let reason = cancellation.reason { throw JobCancelledError(reason: reason) }
    }

    /// Runs `body` when the token fires (at once if it has): for work Swift task cancellation
    /// cannot reach (a child process, a socket). It runs on a Dispatch thread of its own, never
    /// on the thread that fired the token — the worker's pub/sub thread delivers every cancel,
    /// the lease service renews every lease — nor on Swift's cooperative pool, so a slow or
    /// blocking closure delays no other job's cancel.
    public func onCancel(_ body: @escaping @Sendable (CancellationReason) -> Void) {
        cancellation.onFire { reason in
            DispatchQueue.global().async { body(reason) }
        }
    }

    /// The token as an `AsyncSequence`: yields the reason once when it fires (at once if it
    /// has), then ends. For loops that wait on several things:
    ///
    /// ```swift
    /// for await reason in context.cancellations {
    ///     context.logger.info("stopping: \(reason)")
    /// }
    /// ```
    public var cancellations: JobCancellations { JobCancellations(cancellation: cancellation) }

    /// Suspends until the token fires; returns why. Returns nil if the calling task is cancelled
    /// for another reason first.
    public func waitForCancellation() async -> CancellationReason? {
        await cancellation.wait()
    }

    // MARK: Progress and checkpoints

    /// Reports progress (0…100 and a message). Coalesced: at most one write per progress
    /// interval (250 ms by default); the latest value always lands. Never throws: progress is
    /// advisory.
    public func progress(percent: Double, message: String = "") {
        let sendNow: (Double, String)? = progressState.withLock { s in
            let now = ContinuousClock.now
            if let last = s.lastSent, now - last < progressInterval {
                s.pending = (percent, message)
                if s.flushScheduled { return nil }
                s.flushScheduled = true
                let wait = progressInterval - (now - last)
                Task { [self] in
                    try? await Task.sleep(for: wait)
                    flushProgress()
                }
                return nil
            }
            s.lastSent = now
            return (percent, message)
        }
        if let (p, m) = sendNow { send(p, m) }
    }

    private func flushProgress() {
        let pending: (Double, String)? = progressState.withLock { s in
            s.flushScheduled = false
            guard !s.ended else { return nil }
            guard let p = s.pending else { return nil }
            s.pending = nil
            s.lastSent = .now
            return p
        }
        if let (p, m) = pending { send(p, m) }
    }

    private func send(_ percent: Double, _ message: String) {
        guard !cancellation.isFired else { return }
        progressState.withLock { s in
            guard !s.ended else { return }
            let previous = s.chain
            s.chain = Task { [self] in
                await previous?.value
                await write(percent, message)
            }
        }
    }

    /// Called by the worker when the handler returned, before the run's outcome is written: the
    /// latest progress lands first (later writes would be refused by the lease check).
    func finishProgress() async {
        let (pending, chain) = progressState.withLock { s -> ((Double, String)?, Task<Void, Never>?) in
            let p = s.pending
            s.pending = nil
            s.ended = true
            return (p, s.chain)
        }
        await chain?.value
        if let (p, m) = pending { await write(p, m) }
    }

    private func write(_ percent: Double, _ message: String) async {
        do {
            if try await core.setProgress(job.id, token: executionID, percent: percent, message: message) {
                cancellation.fire(.cancelled)
            }
        } catch  where error.code == .leaseLost {
            cancellation.fire(.leaseLost)
        } catch {
            logger.debug("progress not recorded: \(error)")
        }
    }

    /// Saves a checkpoint for a later run of this job to resume from. Awaited and checked
    /// against the lease: throws `leaseLost` if this run no longer owns the job.
    public func checkpoint(_ bytes: [UInt8]) async throws(JobQError) {
        do {
            if try await core.saveCheckpoint(job.id, token: executionID, bytes: bytes) {
                cancellation.fire(.cancelled)
            }
            checkpointState.withLock { $0 = bytes }
        } catch {
            if error.code == .leaseLost { cancellation.fire(.leaseLost) }
            throw error
        }
    }

    /// Saves a checkpoint as JSON.
    public func checkpoint<T: Encodable>(_ value: T) async throws(JobQError) {
        try await checkpoint(try JobPayload.encoding(value).bytes)
    }

    /// The last checkpoint decoded from JSON, if any.
    public func lastCheckpoint<T: Decodable>(as type: T.Type) -> T? {
        guard let bytes = lastCheckpoint else { return nil }
        return try? JSONDecoder().decode(type, from: Data(bytes))
    }
}

/// A job's cancellation token as an `AsyncSequence` of one element (see ``JobContext/cancellations``).
/// Firing the token also cancels the handler's task; the reason is still delivered.
public struct JobCancellations: AsyncSequence, Sendable {
    let cancellation: JobCancellation

    public func makeAsyncIterator() -> Iterator { Iterator(cancellation: cancellation) }

    public struct Iterator: AsyncIteratorProtocol {
        let cancellation: JobCancellation
        var done = false

        public mutating func next() async -> CancellationReason? {
            guard !done else { return nil }
            done = true
            return await cancellation.wait()
        }
    }
}
