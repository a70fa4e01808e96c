import Foundation
import Logging
import Metrics
import Synchronization

/// Takes one queue's jobs: waits for a slot, takes a job (one script), registers the run with
/// the ``RunRegistry`` and starts it as a child task; with nothing runnable, blocks on the
/// queue's marker (`BZPOPMIN` on a connection of its own, on the queue's node) until a job is
/// added, the next delayed one is due (a local timer wakes the connection), or the worker stops.
/// Its task prefers the worker's `jobq-fetch` thread, so takes and registrations never wait for
/// the cooperative pool; the runs it starts run on the pool.
final class QueueFetcher: Sendable {
    let index: Int
    private let core: QueueCore
    private let client: RedisClient
    private let configuration: WorkerConfiguration
    private let registry: RunRegistry
    private let runner: JobRunner
    private let logger: Logger
    /// The marker connection, made on first use and remade after the queue's slot moves.
    private let blocking = Mutex<RedisBlockingClient?>(nil)
    private let stopping = Atomic<Bool>(false)

    init(index: Int, core: QueueCore, configuration: WorkerConfiguration, registry: RunRegistry, runner: JobRunner, logger: Logger) {
        self.index = index
        self.core = core
        self.client = core.client
        self.configuration = configuration
        self.registry = registry
        self.runner = runner
        self.logger = logger
    }

    /// Takes jobs until ``stop()``; returns once every run it started has ended.
    func run() async {
        await withDiscardingTaskGroup { runs in
            await loop(&runs)
        }
        if let b = dropBlockingClient() { await b.close() }
    }

    /// Stops taking (a fetcher blocked on the marker wakes at once).
    func stop() {
        stopping.store(true, ordering: .relaxed)
        blocking.withLock { $0 }?.wake()
    }

    private var isStopping: Bool { stopping.load(ordering: .relaxed) }

    /// Registers a taken job's run (on this thread, as its take's reply is read) and starts it
    /// on the pool.
    private func start(_ job: Job, lease: QueueCore.Lease, in runs: inout DiscardingTaskGroup) {
        let cancellation = registry.begin(index, id: job.id, token: lease.token)
        Gauge(label: "jobq_active_jobs").record(registry.slots.activeCount)
        let (runner, q) = (self.runner, index)
        runs.addTask(executorPreference: globalConcurrentExecutor) {
            await runner.run(q, job: job, lease: lease, cancellation: cancellation)
        }
    }

    private func blockingClient() async throws(RedisError) -> RedisBlockingClient {
        if let existing = blocking.withLock({ $0 }) { return existing }
        let made = try await RedisBlockingClient.onNode(of: core.keys.marker, client: client, maxBlockTimeout: configuration.maxBlockTimeout)
        return blocking.withLock { b in
            if let existing = b { return existing }
            b = made
            return made
        }
    }

    private func dropBlockingClient() -> RedisBlockingClient? {
        blocking.withLock { b in
            defer { b = nil }
            return b
        }
    }

    private func loop(_ runs: inout DiscardingTaskGroup) async {
        let q = index
        var failures = 0
        var keysChecked = false
        while !isStopping {
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
            guard await registry.slots.acquire(q) else { return }
            let lease = QueueCore.Lease(token: JobID.generate(), workerID: configuration.workerID, length: configuration.lease)
            do {
                switch try await core.take(lease: lease) {
                case .job(let job, _):
                    failures = 0
                    start(job, lease: lease, in: &runs)
                case .empty(let nextDue):
                    failures = 0
                    registry.slots.release(q)
                    await waitForWork(nextDueMs: nextDue)
                case .paused:
                    registry.slots.release(q)
                    await waitForWork(nextDueMs: nil)
                case .limited(let retryAfter, let limit):
                    // A flow limit binds: sleep until it lets a start through (a timer), or
                    // until a finish or the reaper frees a slot (the marker).
                    failures = 0
                    registry.slots.release(q)
                    Counter(label: "jobq_takes_limited_total", dimensions: [("queue", core.name), ("limit", limit)]).increment()
                    await waitForWork(nextDueMs: retryAfter)
                }
            } catch {
                registry.slots.release(q)
                failures += 1
                if error.code == .keyConflict { keysChecked = false }
                logger.warning("take failed; retrying", metadata: ["queue": "\(core.name)", "error": "\(error)"])
                try? await Task.sleep(for: min(.seconds(5), .milliseconds(100 * (1 << min(failures, 6)))))
            }
        }
    }

    /// Blocks on the queue's marker until something arrives, the next delayed job is due (a
    /// local timer wakes the connection), the cap passes, or the worker stops.
    private func waitForWork(nextDueMs: Int?) async {
        guard !isStopping else { return }
        registry.slots.setIdle(index, true)
        defer { registry.slots.setIdle(index, false) }
        let b: RedisBlockingClient
        do {
            b = try await blockingClient()
        } catch {
            logger.debug("cannot reach the queue's node to wait on: \(error)")
            try? await Task.sleep(for: .milliseconds(200))
            return
        }
        if isStopping { b.wake() }
        var timer: Task<Void, Never>?
        if let nextDueMs, nextDueMs < configuration.maxBlockTimeout.milliseconds {
            timer = Task {
                try? await Task.sleep(for: .milliseconds(nextDueMs))
                if !Task.isCancelled { b.wake() }
            }
        }
        let seconds = Double(configuration.maxBlockTimeout.milliseconds) / 1000
        do {
            let reply = try await b.send(RedisCommand("BZPOPMIN", core.keys.marker, String(format: "%.3f", seconds)))
            if reply.errorCode == "MOVED" || reply.errorCode == "ASK" {
                // Cluster resharding moved the queue's slot: wait on its new node from now on.
                logger.info("the queue moved to another cluster node", metadata: ["queue": "\(core.name)", "redirect": "\(reply.errorMessage ?? "")"])
                if let old = dropBlockingClient() { await old.close() }
            }
        } catch {
            logger.debug("marker wait ended: \(error)")
            // In a cluster the node may be gone for good (a failover): wait on the new owner.
            if client.configuration.isCluster, let old = dropBlockingClient() { await old.close() }
            try? await Task.sleep(for: .milliseconds(200))
        }
        timer?.cancel()
    }

}
