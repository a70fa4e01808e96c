import Foundation
public import Logging
import Metrics
public import ServiceLifecycle
import Synchronization

/// Runs jobs: takes them from its queues with bounded concurrency, keeps their leases, applies
/// each run's outcome in `docs/job-lifecycle.md`'s order, and shuts down gracefully.
///
/// ```swift
/// var handlers = JobHandlers()
/// handlers.register(SendEmail.self) { email, context in try await send(email) }
/// let worker = try Worker(client: client, configuration: .init(queues: [.init("emails")], concurrency: 16), handlers: handlers)
/// let group = ServiceGroup(services: [worker], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
/// try await group.run()
/// ```
/// - Important: idle, a worker waits by blocking on each queue's marker (no polling); take and
///   finish are one script each, and finishing a job takes the next one in the same call.
public final class Worker: Service, Sendable {
    public let configuration: WorkerConfiguration
    public let client: RedisClient
    private let handlers: JobHandlers
    private let logger: Logger
    private let cores: [QueueCore]
    private let gate: SlotGate
    private let keeper: LeaseKeeper
    private let timeouts = TimeoutTimers(clock: ContinuousClock())
    private let blocking: BlockingConnections
    /// One pub/sub connection per worker process: cancel requests for running jobs (`docs/job-lifecycle.md`).
    /// Cancel-channel subscribers with their channels.
    private let subscribers: [(RedisSubscriber, [String])]
    private let state = Mutex(RunState())

    private struct RunState {
        var stopRequested = false
        var stopWaiters: [CheckedContinuation<Void, Never>] = []
        var started = false
        var unsettled = 0
        var unresponsive = 0
        var settleWaiters: [CheckedContinuation<Void, Never>] = []
    }

    /// - Throws: ``JobQError`` for a configuration out of range, a bad queue name, or jobq's
    ///   scripts missing from the installation.
    public init(client: RedisClient, configuration: WorkerConfiguration, handlers: JobHandlers, logger: Logger? = nil) throws(JobQError) {
        try configuration.validate()
        self.configuration = configuration
        self.client = client
        self.handlers = handlers
        var log = logger ?? Logger(label: "jobq.worker")
        log[metadataKey: "worker"] = "\(configuration.workerID)"
        self.logger = log
        var cores: [QueueCore] = []
        for share in configuration.queues {
            cores.append(try QueueCore(name: share.name, client: client, settings: configuration.settings))
        }
        self.cores = cores
        self.gate = SlotGate(capacity: configuration.concurrency, quotas: configuration.quotas())
        let gate = self.gate
        let beat: [HeartbeatField: String] = [
            .host: ProcessInfo.processInfo.hostName,
            .pid: String(ProcessInfo.processInfo.processIdentifier),
            .queues: configuration.queues.map { "\($0.name):\($0.weight)" }.joined(separator: ","),
            .concurrency: String(configuration.concurrency),
        ]
        self.keeper = LeaseKeeper(
            cores: cores, lease: configuration.lease, workerID: configuration.workerID, logger: log,
            beatFields: beat, activeCount: { gate.activeCount })
        // Cancel messages are published from scripts: PUBLISH on one server (one subscription for
        // every queue); SPUBLISH in a cluster, heard only on the node owning the queue's slot, so
        // one sharded subscriber per queue, each following its slot (`docs/job-lifecycle.md`).
        let listener = Self.cancelListener(cores: cores, keeper: keeper, logger: log)
        if let router = client.cluster {
            self.subscribers = cores.map { core in
                let slot = RedisClusterSlot.of(core.keys.cancelChannel)
                return (
                    RedisSubscriber(
                        shardedOn: client.configuration, locate: { router.known(slot) },
                        onTrouble: { router.refreshSoon() }, onEvent: listener), [core.keys.cancelChannel]
                )
            }
        } else {
            self.subscribers = [(RedisSubscriber(configuration: client.configuration, onEvent: listener), cores.map(\.keys.cancelChannel))]
        }
        self.blocking = BlockingConnections(count: cores.count)
    }

    /// Runs until ``shutdown()`` or a graceful-shutdown signal from the `ServiceGroup`: running
    /// jobs may finish within ``WorkerConfiguration/shutdownGrace``; then their tokens fire
    /// (`shutdown`) and they go back to waiting with no attempt used. A Redis outage never ends it.
    public func run() async throws {
        let first = state.withLock { s -> Bool in
            defer { s.started = true }
            return !s.started
        }
        guard first else { throw JobQError(.invalidOptions, detail: "a Worker runs once; create another to run again") }
        do {
            try await client.load(cores[0].scripts.all)
        } catch {
            logger.warning("could not preload scripts (they load on first use): \(error)")
        }
        keeper.start()
        // The fetchers' thread: takes, the replies that carry jobs, and the registration of each
        // run with the lease service happen there, never on the cooperative pool, so a job is
        // renewed from the moment it is taken even when handlers block every pool thread.
        // Handlers run on the pool.
        let fetching = ThreadExecutor(name: "jobq-fetch")
        await withTaskGroup(of: Void.self) { group in
            for (subscriber, channels) in subscribers {
                group.addTask {
                    do {
                        try await subscriber.subscribe(channels)
                    } catch {
                        self.logger.warning("cannot subscribe to cancel requests yet (lease renewals still report them): \(error)")
                    }
                }
            }
        }
        logger.info(
            "worker started",
            metadata: [
                "queues": "\(configuration.queues.map { "\($0.name):\($0.weight)" }.joined(separator: ","))",
                "concurrency": "\(configuration.concurrency)", "handlers": "\(handlers.names.joined(separator: ","))",
            ])
        await withTaskGroup(of: Void.self) { group in
            for index in cores.indices {
                group.addTask(executorPreference: fetching) { await self.fetch(index) }
            }
            await withGracefulShutdownHandler {
                await self.waitForStopRequest()
            } onGracefulShutdown: {
                self.shutdown()
            }
            // Stop taking: close the gate, wake every fetcher blocked on its marker.
            gate.close()
            for b in blocking.all { b.wake() }
            await group.waitForAll()
        }
        await drain()
        // What the handlers started must not outlive the worker (an exec program's job is back
        // in waiting and may already run elsewhere).
        for (_, hook) in handlers.stopHooks.sorted(by: { $0.key < $1.key }) {
            await hook(configuration.workerID, logger)
        }
        for (subscriber, _) in subscribers { await subscriber.close() }
        await keeper.stop()
        for b in blocking.all { await b.close() }
        await fetching.shutdown()
        logger.info("worker stopped")
    }

    /// Starts a graceful stop (what SIGTERM does under a `ServiceGroup`). Returns at once.
    public func shutdown() {
        let (waiters, first) = state.withLock { s -> ([CheckedContinuation<Void, Never>], Bool) in
            let first = !s.stopRequested
            s.stopRequested = true
            defer { s.stopWaiters = [] }
            return (s.stopWaiters, first)
        }
        if first {
            logger.info(
                "shutting down: taking no new jobs; running jobs get up to the shutdown grace",
                metadata: [
                    "running": "\(gate.activeCount)", "grace": "\(configuration.shutdownGrace)",
                ])
        }
        for w in waiters { w.resume() }
        gate.close()
        for b in blocking.all { b.wake() }
    }

    private var stopRequested: Bool { state.withLock { $0.stopRequested } }

    /// The lease keeper's loop rounds and failed renewal tries (tests: an outage must not spin).
    var leaseKeeperCounts: (wakeups: Int, failedRenewals: Int) {
        (keeper.wakeups.load(ordering: .relaxed), keeper.failedRenewals.load(ordering: .relaxed))
    }

    /// True from the start of ``run()`` until a stop is requested (for readiness checks).
    public var isRunning: Bool { state.withLock { $0.started && !$0.stopRequested } }

    /// Fires the token of a running job when its cancel request is published — on the
    /// subscriber's thread, as the message is read (no hop to the cooperative pool); after a
    /// resubscribe (messages may have been missed) renews at once, which reports every cancel
    /// flag set on this worker's jobs.
    private static func cancelListener(cores: [QueueCore], keeper: LeaseKeeper, logger: Logger) -> @Sendable (RedisSubscriber.Event) -> Void {
        let channels = Dictionary(uniqueKeysWithValues: cores.enumerated().map { ($1.keys.cancelChannel, $0) })
        return { event in
            switch event {
            case .message(let channel, let payload):
                guard let q = channels[channel] else { return }
                let id = String(decoding: payload, as: UTF8.self)
                for run in keeper.runs(queueIndex: q, id: id) where run.cancellation.fire(.cancelled) {
                    logger.info("cancel requested: stopping the job", metadata: ["queue": "\(cores[q].name)", "job": "\(id)", "execution": "\(run.token)"])
                }
            case .resubscribed:
                keeper.renewSoon()
            }
        }
    }

    private func waitForStopRequest() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now = state.withLock { s -> Bool in
                if s.stopRequested { return true }
                s.stopWaiters.append(c)
                return false
            }
            if now { c.resume() }
        }
    }

    /// Lets running jobs finish within the grace, then fires their tokens (`shutdown`) and waits
    /// (bounded) until each has been requeued.
    private func drain() async {
        let grace = configuration.shutdownGrace
        let drained = await firstOf(seconds: grace) { await self.gate.waitUntilEmpty() }
        if drained { return }
        let runs = keeper.activeRuns
        logger.info("shutdown grace over: requeueing running jobs", metadata: ["jobs": "\(runs.count)"])
        for run in runs { run.cancellation.fire(.shutdown) }
        _ = await firstOf(seconds: .seconds(10)) { await self.waitUntilSettled() }
    }

    // MARK: Fetching

    private func fetch(_ q: Int) async {
        let core = cores[q]
        var failures = 0
        var keysChecked = false
        while !stopRequested {
            // Before the first take, and after a WRONGTYPE: a key of another type under the
            // queue's prefix would make a take fail halfway, so none runs until it is gone.
            if !keysChecked {
                do {
                    let conflicts = try await core.keyConflicts()
                    if !conflicts.isEmpty {
                        failures += 1
                        logger.error(
                            "keyConflict: keys of this queue hold values jobq did not write; taking no jobs until they are renamed or deleted",
                            metadata: ["queue": "\(core.name)", "keys": "\(conflicts.joined(separator: "; "))"])
                        try? await Task.sleep(for: min(.seconds(5), .milliseconds(100 * (1 << min(failures, 6)))))
                        continue
                    }
                    keysChecked = true
                } catch {
                    // Redis unreachable: the take below fails and backs off; check again next time.
                }
            }
            guard await gate.acquire(q) else { return }
            let lease = QueueCore.Lease(token: JobID.generate(), workerID: configuration.workerID, length: configuration.lease)
            do {
                switch try await core.take(lease: lease) {
                case .job(let job, _):
                    failures = 0
                    startRun(q, job: job, lease: lease)
                case .empty(let nextDue):
                    failures = 0
                    gate.release(q)
                    await waitForWork(q, nextDueMs: nextDue)
                case .paused:
                    gate.release(q)
                    await waitForWork(q, nextDueMs: nil)
                }
            } catch {
                gate.release(q)
                failures += 1
                if error.code == .keyConflict { keysChecked = false }
                logger.warning("take failed; retrying", metadata: ["queue": "\(core.name)", "error": "\(error)"])
                try? await Task.sleep(for: min(.seconds(5), .milliseconds(100 * (1 << min(failures, 6)))))
            }
        }
    }

    /// Blocks on the queue's marker until something arrives, the next delayed job is due (a
    /// local timer wakes the connection), the cap passes, or the worker stops.
    private func waitForWork(_ q: Int, nextDueMs: Int?) async {
        guard !stopRequested else { return }
        gate.setIdle(q, true)
        defer { gate.setIdle(q, false) }
        let b: RedisBlockingClient
        do {
            b = try await blocking.get(q) { () async throws(RedisError) -> RedisBlockingClient in
                try await RedisBlockingClient.onNode(of: self.cores[q].keys.marker, client: self.client, maxBlockTimeout: self.configuration.maxBlockTimeout)
            }
        } catch {
            logger.debug("cannot reach the queue's node to wait on: \(error)")
            try? await Task.sleep(for: .milliseconds(200))
            return
        }
        if stopRequested { b.wake() }
        var timer: Task<Void, Never>?
        if let nextDueMs, nextDueMs < configuration.maxBlockTimeout.milliseconds {
            timer = Task {
                try? await Task.sleep(for: .milliseconds(nextDueMs))
                if !Task.isCancelled { b.wake() }
            }
        }
        let seconds = Double(configuration.maxBlockTimeout.milliseconds) / 1000
        do {
            let reply = try await b.send(RedisCommand("BZPOPMIN", cores[q].keys.marker, String(format: "%.3f", seconds)))
            if reply.errorCode == "MOVED" || reply.errorCode == "ASK" {
                // Cluster resharding moved the queue's slot: wait on its new node from now on.
                logger.info("the queue moved to another cluster node", metadata: ["queue": "\(cores[q].name)", "redirect": "\(reply.errorMessage ?? "")"])
                if let old = blocking.drop(q) { await old.close() }
            }
        } catch {
            logger.debug("marker wait ended: \(error)")
            // In a cluster the node may be gone for good (a failover): wait on the new owner.
            if client.configuration.isCluster, let old = blocking.drop(q) { await old.close() }
            try? await Task.sleep(for: .milliseconds(200))
        }
        timer?.cancel()
    }

    // MARK: Running

    /// Hands a taken job to the lease service (on the thread the take's reply arrived on) and
    /// returns the run's token.
    private func register(_ q: Int, job: Job, lease: QueueCore.Lease) -> JobCancellation {
        let cancellation = JobCancellation()
        keeper.add(.init(queueIndex: q, id: job.id, token: lease.token, cancellation: cancellation))
        return cancellation
    }

    private func startRun(_ q: Int, job: Job, lease: QueueCore.Lease) {
        let cancellation = register(q, job: job, lease: lease)
        state.withLock { $0.unsettled += 1 }
        Gauge(label: "jobq_active_jobs").record(gate.activeCount)
        // The run (and its handler) on the pool, not on the fetchers' thread it was taken on.
        Task(executorPreference: globalConcurrentExecutor) { [self] in
            var current: (Job, QueueCore.Lease, JobCancellation)? = (job, lease, cancellation)
            while let (job, lease, cancellation) = current {
                current = nil
                let (end, handlerTask) = await execute(q, job: job, lease: lease, cancellation: cancellation)
                var next: QueueCore.Lease?
                if handlerTask == nil, !stopRequested, gate.mayContinue(q) {
                    next = QueueCore.Lease(token: JobID.generate(), workerID: configuration.workerID, length: configuration.lease)
                }
                if let end {
                    keeper.settle(token: lease.token)
                    // A finish may take the next job; it is registered as soon as this task
                    // resumes (on the pool: hopping to the fetchers' thread for it cost about a
                    // tenth of the drain rate).
                    if let (nextJob, nextLease) = await finish(q, job: job, lease: lease, end: end, next: next) {
                        current = (nextJob, nextLease, register(q, job: nextJob, lease: nextLease))
                    }
                }
                keeper.remove(token: lease.token)
                if current != nil { state.withLock { $0.unsettled += 1 } }
                settle()
                if let handlerTask {
                    // The outcome is in Redis; the slot stays taken until the handler returns.
                    let unresponsive = Gauge(label: "jobq_handlers_unresponsive", dimensions: [("queue", cores[q].name)])
                    let count = state.withLock { s -> Int in
                        s.unresponsive += 1
                        return s.unresponsive
                    }
                    unresponsive.record(count)
                    if end == nil { Counter(label: "jobq_results_discarded_total", dimensions: [("queue", cores[q].name)]).increment() }
                    await handlerTask.value
                    let after = state.withLock { s -> Int in
                        s.unresponsive -= 1
                        return s.unresponsive
                    }
                    unresponsive.record(after)
                    logger.info(
                        "handler returned after its job was stopped; its result was discarded", metadata: ["queue": "\(cores[q].name)", "job": "\(job.id)"])
                }
            }
            gate.release(q)
            Gauge(label: "jobq_active_jobs").record(gate.activeCount)
        }
    }

    private func settle() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.unsettled -= 1
            guard s.unsettled == 0 else { return [] }
            defer { s.settleWaiters = [] }
            return s.settleWaiters
        }
        for w in waiters { w.resume() }
    }

    private func waitUntilSettled() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now = state.withLock { s -> Bool in
                if s.unsettled == 0 { return true }
                s.settleWaiters.append(c)
                return false
            }
            if now { c.resume() }
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
        let timer = timeouts.add(at: startedAt + job.options.timeout) { cancellation.fire(.timeout) }
        let first = await race.value()
        timeouts.remove(timer)
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
                        case .waiting: if case .shutdown = end { "jobq_jobs_requeued_total" } else { "jobq_jobs_retried_total" }
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

    /// Waits for `body` at most `seconds`; true if it finished.
    private func firstOf(seconds: Duration, _ body: @escaping @Sendable () async -> Void) async -> Bool {
        let race = OneShot<Bool>()
        let work = Task {
            await body()
            race.settle(true)
        }
        let timer = Task {
            try? await Task.sleep(for: seconds)
            race.settle(false)
        }
        let result = await race.value()
        work.cancel()
        timer.cancel()
        return result
    }
}

/// The first of: the handler returned, or the job's token fired.
enum RunFirst: Sendable {
    case handler(Result<[UInt8], any Error>)
    case token(CancellationReason)
}

/// Every running job's timeout, fired from one sleeping task for the whole worker. (A task and a
/// dispatch timer per job cost more than the rest of a short job's bookkeeping.) The task sleeps
/// until the earliest deadline and is replaced only when a sooner one arrives — with one timeout
/// for all jobs, never; a job that ends just leaves, and the sleeper re-arms when it wakes.
/// Generic over the clock so a test can drive it with a clock of its own.
final class TimeoutTimers<C: Clock>: Sendable where C: Sendable, C.Instant: Sendable {
    private struct State {
        var entries: [UInt64: (deadline: C.Instant, fire: @Sendable () -> Void)] = [:]
        var nextID: UInt64 = 0
        var armedFor: C.Instant?
        var sleeper: Task<Void, Never>?
    }
    private let state = Mutex(State())
    let clock: C

    init(clock: C) { self.clock = clock }

    /// Calls `fire` at `deadline` unless removed first; returns the timer's id.
    func add(at deadline: C.Instant, _ fire: @escaping @Sendable () -> Void) -> UInt64 {
        state.withLock { s in
            let id = s.nextID
            s.nextID += 1
            s.entries[id] = (deadline, fire)
            if s.armedFor.map({ deadline < $0 }) ?? true { arm(&s, for: deadline) }
            return id
        }
    }

    func remove(_ id: UInt64) {
        state.withLock { _ = $0.entries.removeValue(forKey: id) }
    }

    /// Timers not yet fired nor removed.
    var pending: Int { state.withLock { $0.entries.count } }

    private func arm(_ s: inout State, for deadline: C.Instant) {
        s.sleeper?.cancel()
        s.armedFor = deadline
        let clock = self.clock
        s.sleeper = Task { [self] in
            try? await clock.sleep(until: deadline, tolerance: nil)
            guard !Task.isCancelled else { return }
            wake()
        }
    }

    private func wake() {
        let due: [@Sendable () -> Void] = state.withLock { s in
            let now = clock.now
            var due: [@Sendable () -> Void] = []
            var earliest: C.Instant?
            for (id, entry) in s.entries {
                if entry.deadline <= now {
                    due.append(entry.fire)
                    s.entries[id] = nil
                } else if earliest.map({ entry.deadline < $0 }) ?? true {
                    earliest = entry.deadline
                }
            }
            s.armedFor = nil
            s.sleeper = nil
            if let earliest { arm(&s, for: earliest) }
            return due
        }
        for fire in due { fire() }
    }
}

/// One blocking connection per queue, made on first use on the node that holds the queue (the
/// server, or its cluster primary), and remade after the queue's slot moves.
final class BlockingConnections: Sendable {
    private let clients: Mutex<[RedisBlockingClient?]>

    init(count: Int) { clients = Mutex(Array(repeating: nil, count: count)) }

    func get(_ q: Int, make: () async throws(RedisError) -> RedisBlockingClient) async throws(RedisError) -> RedisBlockingClient {
        if let existing = clients.withLock({ $0[q] }) { return existing }
        let made = try await make()
        return clients.withLock { c in
            if let existing = c[q] { return existing }
            c[q] = made
            return made
        }
    }

    func drop(_ q: Int) -> RedisBlockingClient? {
        clients.withLock { c in
            defer { c[q] = nil }
            return c[q]
        }
    }

    var all: [RedisBlockingClient] { clients.withLock { $0.compactMap { $0 } } }
}
