import Logging
import Metrics

/// Tells the fleet this worker is alive: every L/3 the `jobq:workers` ZSET (score = Redis time of
/// the last beat) and a hash per worker that expires after 3 beats, so `jobq-admin workers` lists
/// live workers; both are scripts that a full Redis still runs (a draining worker must not vanish
/// from the list). Each beat also records the queues' depth by state for `/metrics`. At a
/// graceful stop it says goodbye, so the worker leaves the list at once. On a thread of its own
/// (`jobq-heartbeat`), through the worker's upkeep client.
final class Heartbeat: @unchecked Sendable {
    private let cores: [QueueCore]
    private let lease: Duration
    private let workerID: String
    private let fields: [HeartbeatField: String]
    private let activeCount: @Sendable () -> Int
    private let trouble: TroubleLog
    private let pause = UpkeepPause()
    // Confined to the service's task.
    private var startedAt: Int?

    init(
        cores: [QueueCore], lease: Duration, workerID: String, fields: [HeartbeatField: String], trouble: TroubleLog,
        activeCount: @escaping @Sendable () -> Int
    ) {
        self.cores = cores
        self.lease = lease
        self.workerID = workerID
        self.fields = fields
        self.trouble = trouble
        self.activeCount = activeCount
    }

    /// Beats until ``stop()``, then leaves the worker list.
    func run() async {
        await ThreadExecutor.withThread(named: "jobq-heartbeat") {
            var next = ContinuousClock.now
            while pause.wait(until: next) {
                next = .now + lease / 3
                await beat()
            }
            await leave()
        }
    }

    func stop() { pause.stop() }

    private func beat() async {
        let beat = Int64(max(1, (lease / 3).milliseconds))
        let scripts = cores[0].scripts
        guard let now = await trouble.call(cores[0], ScriptCall<Int>.registerWorker(scripts, workerID: workerID, expiryMs: beat * 3)) else { return }
        if startedAt == nil { startedAt = now }
        var values: [(HeartbeatField, any RedisArgument)] = [(.lastSeen, now), (.active, activeCount()), (.started, startedAt ?? now)]
        for (field, value) in fields.sorted(by: { $0.key.rawValue < $1.key.rawValue }) { values.append((field, value)) }
        _ = await trouble.call(cores[0], ScriptCall<Void>.recordHeartbeat(scripts, workerID: workerID, expiryMs: beat * 3, fields: values))
        for core in cores {
            guard let counts = await trouble.call(core, core.countJobsCall()) else { continue }
            let byState: [(JobState, Int)] = [
                (.waiting, counts.waiting), (.delayed, counts.delayed), (.active, counts.active),
                (.completed, counts.completed), (.failed, counts.failed), (.cancelled, counts.cancelled),
            ]
            for (state, value) in byState {
                Gauge(label: "jobq_queue_jobs", dimensions: [("queue", core.name), ("state", state.rawValue)]).record(value)
            }
        }
    }

    private func leave() async {
        let client = cores[0].client
        do {
            _ = try await client.send(RedisCommand("ZREM", QueueKeys.workerRegistry, workerID), idempotent: true)
            _ = try await client.send(RedisCommand("UNLINK", WorkerInfo.key(for: workerID)), idempotent: true)
        } catch {
            trouble.failed("could not leave the worker list: \(error)")
        }
    }
}
