import Foundation
import Logging
import Metrics
import Synchronization

/// Runs jobs in their slots: each handler against its token, then the run's end applied in
/// `docs/job-lifecycle.md`'s order. A finish that may continue in the slot takes the queue's next
/// job in the same script call, and the same task runs it.
final class JobRunner: Sendable {
    private let configuration: WorkerConfiguration
    private let cores: [QueueCore]
    private let handlers: JobHandlers
    private let registry: RunRegistry
    private let logger: Logger
    /// Handlers still running after their job was stopped (their slots stay taken).
    private let unresponsive = Mutex(0)

    init(configuration: WorkerConfiguration, cores: [QueueCore], handlers: JobHandlers, registry: RunRegistry, logger: Logger) {
        self.configuration = configuration
        self.cores = cores
        self.handlers = handlers
        self.registry = registry
        self.logger = logger
    }

    /// Runs `job` (registered under `lease` as `cancellation`), then each job a finish takes
    /// next, in the calling task; releases the slot at the end. Cancelling the task (the end of
    /// a shutdown) gives up on a handler that ignored its token and on a finish still retried.
    func run(_ q: Int, job: Job, lease: QueueCore.Lease, cancellation: JobCancellation) async {
        var current: (Job, QueueCore.Lease, JobCancellation)? = (job, lease, cancellation)
        while let (job, lease, cancellation) = current {
            current = nil
            if let tick = job.scheduledFor, let started = job.startedAt, job.attemptsMade == 1 {
                // A schedule's tick: how late its first run started (Redis clock both).
                Recorder(label: "jobq_schedule_lag_seconds", dimensions: [("queue", cores[q].name)])
                    .record(max(0, started.timeIntervalSince(tick)))
            }
            let (end, handlerTask) = await execute(q, job: job, lease: lease, cancellation: cancellation)
            var next: QueueCore.Lease?
            if handlerTask == nil, registry.slots.mayContinue(q) {
                next = QueueCore.Lease(token: JobID.generate(), workerID: configuration.workerID, length: configuration.lease)
            }
            if let end {
                registry.settling(token: lease.token)
                // A finish may take the next job; it is registered as soon as this task resumes
                // (on the pool: hopping to the fetchers' thread for it cost about a tenth of the
                // drain rate).
                if let (nextJob, nextLease) = await finish(q, job: job, lease: lease, end: end, next: next) {
                    current = (nextJob, nextLease, registry.begin(q, id: nextJob.id, token: nextLease.token))
                }
            }
            registry.end(token: lease.token)
            if let handlerTask { await waitForUnresponsive(q, job: job, end: end, handlerTask) }
        }
        registry.slots.release(q)
        Gauge(label: "jobq_active_jobs").record(registry.slots.activeCount)
    }

    /// The outcome is in Redis; the slot stays taken until the handler returns (or the worker
    /// gives up on it at the end of a shutdown).
    private func waitForUnresponsive(_ q: Int, job: Job, end: QueueCore.RunEnd?, _ handlerTask: Task<Void, Never>) async {
        let gauge = Gauge(label: "jobq_handlers_unresponsive", dimensions: [("queue", cores[q].name)])
        gauge.record(
            unresponsive.withLock { n in
                n += 1
                return n
            })
        if end == nil { Counter(label: "jobq_results_discarded_total", dimensions: [("queue", cores[q].name)]).increment() }
        let returned = OneShot<Bool>()
        // The watcher lives until the handler returns; given up on, the run no longer waits.
        Task {
            await handlerTask.value
            returned.settle(true)
        }
        let came = await withTaskCancellationHandler {
            await returned.value()
        } onCancel: {
            returned.settle(false)
        }
        gauge.record(
            unresponsive.withLock { n in
                n -= 1
                return n
            })
        if came {
            logger.info("handler returned after its job was stopped; its result was discarded", metadata: ["queue": "\(cores[q].name)", "job": "\(job.id)"])
        }
    }

    /// Runs one job's handler against its token. Returns the run's end (nil when the lease was
    /// lost: nothing may be written) and, when the token fired first, the still-running handler.
    private func execute(_ q: Int, job: Job, lease: QueueCore.Lease, cancellation: JobCancellation) async -> (QueueCore.RunEnd?, Task<Void, Never>?) {
        let core = cores[q]
        let retryDelay = job.options.backoff.delayMs(afterAttempt: job.attemptsMade)
        guard let handler = handlers.handler(for: job.name) else {
            logger.warning(
                "no handler for this job name; the attempt fails and is retried",
                metadata: ["queue": "\(core.name)", "job": "\(job.id)", "name": "\(job.name)"])
            return (
                .failed(
                    reason: "unknownJobName",
                    details: "no handler for \"\(job.name)\" in worker \(configuration.workerID) (it has: \(handlers.names.joined(separator: ", ")))",
                    retryDelayMs: retryDelay), nil
            )
        }
        let context = JobContext(
            job: job, executionID: lease.token, workerID: configuration.workerID, core: core,
            cancellation: cancellation, progressInterval: configuration.progressInterval, logger: logger)
        let race = OneShot<RunFirst>()
        let dimensions = [("queue", core.name), ("name", job.name)]
        Counter(label: "jobq_jobs_started_total", dimensions: dimensions).increment()
        let startedAt = ContinuousClock.now
        let handlerTask = Task {
            let result: Result<[UInt8], any Error>
            do {
                result = .success(try await handler(job, context))
            } catch {
                result = .failure(error)
            }
            // A handler that returns after its token fired (it saw isCancelled) returns because
            // of it: the token came first and decides the outcome (`docs/job-lifecycle.md`).
            if let reason = cancellation.reason { race.settle(.token(reason)) } else { race.settle(.handler(result)) }
        }
        cancellation.onFire { reason in
            handlerTask.cancel()
            race.settle(.token(reason))
        }
        registry.startDeadline(token: lease.token, at: startedAt + job.options.timeout)
        let first = await race.value()
        registry.stopDeadline(token: lease.token)
        Timer(label: "jobq_handler_duration_seconds", dimensions: dimensions, preferredDisplayUnit: .seconds)
            .recordNanoseconds(
                Int64(
                    (ContinuousClock.now - startedAt).components.attoseconds / 1_000_000_000 + (ContinuousClock.now - startedAt).components.seconds
                        * 1_000_000_000))
        if case .handler = first { await context.finishProgress() }
        switch first {
        case .handler(.success(let bytes)):
            return (.completed(result: bytes), nil)
        case .handler(.failure(let error)):
            if let reason = cancellation.reason { return (end(for: reason, job: job, retryDelay: retryDelay), nil) }
            if let fatal = error as? UnrecoverableError {
                return (.unrecoverable(reason: fatal.reason, details: fatal.details), nil)
            }
            if let limited = error as? RateLimited {
                return (.rateLimited(throttleMs: limited.milliseconds, group: limited.scope == .group), nil)
            }
            let reason = (error as? any FailureReasonProviding)?.failureReason ?? String(describing: type(of: error))
            var delay = retryDelay
            if let asked = (error as? any RetryDelayProviding)?.retryAfter { delay = Int64(asked.milliseconds) }
            return (.failed(reason: reason, details: String(describing: error), retryDelayMs: delay), nil)
        case .token(let reason):
            let rest = Task { _ = await handlerTask.value }
            return (end(for: reason, job: job, retryDelay: retryDelay), rest)
        }
    }

    private func end(for reason: CancellationReason, job: Job, retryDelay: Int64) -> QueueCore.RunEnd? {
        switch reason {
        case .cancelled: return .cancelled(reason: "cancelled")
        case .timeout: return .timeout(details: "no result within the job's timeout of \(job.options.timeout)", retryDelayMs: retryDelay)
        case .shutdown: return .shutdown
        case .leaseLost: return nil
        }
    }

    /// Applies a run's end; returns the next job when the same call took one.
    private func finish(_ q: Int, job: Job, lease: QueueCore.Lease, end: QueueCore.RunEnd, next: QueueCore.Lease?) async -> (Job, QueueCore.Lease)? {
        let core = cores[q]
        for attempt in 0..<20 {
            // Given up on at the end of a shutdown (past the grace and the wait for requeues):
            // the job keeps its lease until it lapses, and the reaper of another worker gives
            // the attempt back.
            if attempt > 0, Task.isCancelled { return nil }
            do {
                switch try await core.finish(job.id, token: lease.token, end: end, next: next) {
                case .applied(let state, let take):
                    logger.debug("job ended a run", metadata: ["queue": "\(core.name)", "job": "\(job.id)", "state": "\(state)"])
                    let outcome: String =
                        switch state {
                        case .completed: "jobq_jobs_completed_total"
                        case .failed: "jobq_jobs_failed_total"
                        case .cancelled: "jobq_jobs_cancelled_total"
                        case .delayed: "jobq_jobs_retried_total"
                        case .waiting:
                            switch end {
                            case .shutdown: "jobq_jobs_requeued_total"
                            case .rateLimited: "jobq_jobs_rate_limited_total"
                            default: "jobq_jobs_retried_total"
                            }
                        case .active: "jobq_jobs_unexpected_total"
                        }
                    Counter(label: outcome, dimensions: [("queue", core.name), ("name", job.name)]).increment()
                    if case .job(let nextJob, _)? = take, let next { return (nextJob, next) }
                    return nil
                case .alreadyApplied:
                    return nil
                case .leaseLost:
                    Counter(label: "jobq_results_discarded_total", dimensions: [("queue", core.name)]).increment()
                    logger.warning("lease lost before the result was stored: result discarded", metadata: ["queue": "\(core.name)", "job": "\(job.id)"])
                    return nil
                case .notFound:
                    logger.warning("the job was deleted while it ran (obliterate): result discarded", metadata: ["queue": "\(core.name)", "job": "\(job.id)"])
                    return nil
                }
            } catch {
                // Finish is idempotent (token-checked, OK_ALREADY on a repeat): retry until the
                // lease would have run out anyway.
                logger.warning("finish failed; retrying", metadata: ["queue": "\(core.name)", "job": "\(job.id)", "error": "\(error)"])
                try? await Task.sleep(for: .milliseconds(min(2000, 50 << min(attempt, 6))))
            }
        }
        return nil
    }

}
