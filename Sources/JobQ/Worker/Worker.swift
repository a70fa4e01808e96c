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
    private let registry: RunRegistry
    private let fetchers: [QueueFetcher]
    private let state = Mutex(RunState())

    private struct RunState {
        var stopRequested = false
        var stopWaiters: [CheckedContinuation<Void, Never>] = []
        var started = false
        /// The lease service of the current run (for ``leaseKeeperCounts``).
        var leases: LeaseService?
    }

    /// Creates the worker; nothing runs (no thread, no connection) until ``run()``.
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
        let registry = RunRegistry(capacity: configuration.concurrency, quotas: configuration.quotas())
        self.registry = registry
        let runner = JobRunner(configuration: configuration, cores: cores, handlers: handlers, registry: registry, logger: log)
        self.fetchers = cores.indices.map { q in
            QueueFetcher(index: q, core: cores[q], configuration: configuration, registry: registry, runner: runner, logger: log)
        }
    }

    /// Runs until ``shutdown()`` or a graceful-shutdown signal from the `ServiceGroup`: running
    /// jobs may finish within ``WorkerConfiguration/shutdownGrace``; then their tokens fire
    /// (`shutdown`) and they go back to waiting with no attempt used. A Redis outage never ends it.
    ///
    /// The worker is a group of small services (`docs/concurrency.md`), each a child task of this
    /// call: a ``QueueFetcher`` per queue (whose runs are its child tasks), the ``LeaseService``,
    /// the ``Reaper``, the ``Scheduler``, the ``Heartbeat`` and the ``CancelListener``, around one
    /// ``RunRegistry``.
    /// Every thread they start is joined before this returns.
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
        // The upkeep services' own client: short deadlines, and never queued behind the main
        // connections' traffic.
        let upkeep = RedisClient(configuration: LeaseService.clientConfiguration(client.configuration, lease: configuration.lease))
        var upkeepCores: [QueueCore] = []
        for core in cores { upkeepCores.append((try? QueueCore(name: core.name, client: upkeep, settings: core.settings)) ?? core) }
        let trouble = TroubleLog(logger: logger, what: "worker upkeep")
        let leases = LeaseService(cores: upkeepCores, registry: registry, lease: configuration.lease, logger: logger, trouble: trouble)
        let reaper = Reaper(cores: upkeepCores, lease: configuration.lease, workerID: configuration.workerID, logger: logger, trouble: trouble)
        let scheduler = Scheduler(cores: upkeepCores, cap: configuration.maxBlockTimeout, logger: logger, trouble: trouble)
        let registry = self.registry
        let heartbeat = Heartbeat(
            cores: upkeepCores, lease: configuration.lease, workerID: configuration.workerID, fields: heartbeatFields, trouble: trouble,
            status: { [weak self] in
                guard let self else { return .init(active: 0, concurrency: 0, state: "stopping") }
                // Runs registered, not slots in use: a fetcher holds a slot while its take is
                // on the wire, which is no running job.
                return .init(active: registry.count, concurrency: self.concurrency, state: self.stateName)
            },
            onRequest: { [weak self] request in self?.apply(request) })
        let cancels = CancelListener(
            cores: cores, client: client, registry: registry, logger: logger, workerID: configuration.workerID,
            onResubscribed: {
                leases.renewSoon()
                scheduler.wake()
            }, onNudge: { heartbeat.nudge() }, onSchedulesChanged: { scheduler.wake() })
        state.withLock { $0.leases = leases }
        await withTaskGroup(of: Void.self) { services in
            services.addTask { await leases.run() }
            services.addTask { await reaper.run() }
            services.addTask { await heartbeat.run() }
            if configuration.runsSchedules { services.addTask { await scheduler.run() } }
            await cancels.withSubscriptions {
                logger.info(
                    "worker started",
                    metadata: [
                        "queues": "\(configuration.queues.map { "\($0.name):\($0.weight)" }.joined(separator: ","))",
                        "concurrency": "\(configuration.concurrency)", "handlers": "\(handlers.names.joined(separator: ","))",
                    ])
                await runFetchers()
                // What the handlers started must not outlive the worker (an exec program's job is
                // back in waiting and may already run elsewhere).
                for (_, hook) in handlers.stopHooks.sorted(by: { $0.key < $1.key }) {
                    await hook(configuration.workerID, logger)
                }
            }
            leases.stop()
            reaper.stop()
            scheduler.stop()
            heartbeat.stop()
            await services.waitForAll()
        }
        await upkeep.close()
        logger.info("worker stopped")
    }

    /// The fetchers on the worker's `jobq-fetch` thread (joined before this returns), until a
    /// stop; then the drain.
    private func runFetchers() async {
        await ThreadExecutor.withThread(named: "jobq-fetch") {
            await withTaskGroup(of: Void.self) { group in
                for fetcher in fetchers {
                    group.addTask { await fetcher.run() }
                }
                await withGracefulShutdownHandler {
                    await self.waitForStopRequest()
                } onGracefulShutdown: {
                    self.shutdown()
                }
                stopTaking()
                await drain()
                // Past the grace and the wait for requeues: give up on handlers that ignore their
                // token and on finishes still retried.
                group.cancelAll()
                await group.waitForAll()
            }
        }
    }

    private var heartbeatFields: [HeartbeatField: String] {
        [
            .host: ProcessInfo.processInfo.hostName,
            .pid: String(ProcessInfo.processInfo.processIdentifier),
            .queues: configuration.queues.map { "\($0.name):\($0.weight)" }.joined(separator: ","),
        ]
    }

    // MARK: Control at run time

    /// Pauses this worker, quietly: running jobs finish, no new job starts (a run whose finish is
    /// already under way may take one more), the leases of the running ones are kept. Its queues are untouched (other workers go on). Returns false if
    /// it was paused already. An operator does the same with `jobq-admin workers pause <id>`.
    @discardableResult
    public func pause() -> Bool {
        guard !registry.slots.isPaused else { return false }
        registry.slots.setPaused(true)
        logger.info("paused: finishing running jobs, taking none", metadata: ["running": "\(registry.slots.activeCount)"])
        return true
    }

    /// Resumes a paused worker. Returns false if it was not paused.
    @discardableResult
    public func resume() -> Bool {
        guard registry.slots.isPaused else { return false }
        registry.slots.setPaused(false)
        logger.info("resumed: taking jobs again")
        return true
    }

    public var isPaused: Bool { registry.slots.isPaused }

    /// How many jobs this worker runs at once now (``WorkerConfiguration/concurrency`` until
    /// changed).
    public var concurrency: Int { registry.slots.capacity }

    /// Changes how many jobs this worker runs at once (1…10,000), shared by weight across its
    /// queues as at the start. More slots fill at once; fewer take effect as running jobs end
    /// (none is stopped; a run whose finish is already under way may take one more job). An operator does the same with `jobq-admin workers concurrency <id> N`.
    public func setConcurrency(_ slots: Int) throws(JobQError) {
        guard (1...10_000).contains(slots) else {
            throw JobQError(.invalidOptions, detail: "concurrency: \(slots) is outside 1…10000")
        }
        let before = registry.slots.capacity
        registry.slots.resize(capacity: slots, quotas: configuration.quotas(concurrency: slots))
        if slots != before { logger.info("concurrency changed", metadata: ["from": "\(before)", "to": "\(slots)"]) }
    }

    /// `running`, `paused` or `stopping`, as the heartbeat reports it.
    var stateName: String {
        if state.withLock({ $0.stopRequested }) { return "stopping" }
        return registry.slots.isPaused ? "paused" : "running"
    }

    /// An operator's request, from the heartbeat.
    private func apply(_ request: Heartbeat.Request) {
        switch request {
        case .paused(let paused):
            logger.notice(paused ? "an operator paused this worker" : "an operator resumed this worker")
            if paused { pause() } else { resume() }
        case .concurrency(let n):
            logger.notice("an operator changed this worker's concurrency", metadata: ["to": "\(n)"])
            do {
                try setConcurrency(n)
            } catch {
                logger.warning("ignored: \(error)")
            }
        }
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
                    "running": "\(registry.slots.activeCount)", "grace": "\(configuration.shutdownGrace)",
                ])
        }
        for w in waiters { w.resume() }
        stopTaking()
    }

    /// Closes the slots and wakes every fetcher blocked on its marker.
    private func stopTaking() {
        registry.slots.close()
        for fetcher in fetchers { fetcher.stop() }
    }

    /// The lease service's loop rounds and failed renewal tries (tests: an outage must not spin).
    var leaseKeeperCounts: (wakeups: Int, failedRenewals: Int) {
        guard let leases = state.withLock({ $0.leases }) else { return (0, 0) }
        return (leases.wakeups.load(ordering: .relaxed), leases.failedRenewals.load(ordering: .relaxed))
    }

    /// True from the start of ``run()`` until a stop is requested (for readiness checks).
    public var isRunning: Bool { state.withLock { $0.started && !$0.stopRequested } }

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
        let drained = await firstOf(seconds: grace) { await self.registry.slots.waitUntilEmpty() }
        if drained { return }
        let runs = registry.all
        logger.info("shutdown grace over: requeueing running jobs", metadata: ["jobs": "\(runs.count)"])
        for run in runs { run.cancellation.fire(.shutdown) }
        _ = await firstOf(seconds: .seconds(10)) { await self.registry.waitUntilSettled() }
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
