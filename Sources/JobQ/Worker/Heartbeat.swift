import Logging
import Metrics

/// Tells the fleet this worker is alive: every L/3 the `jobq:workers` ZSET (score = Redis time of
/// the last beat) and a hash per worker that expires after 3 beats, so `jobq-admin workers` lists
/// live workers; both are scripts that a full Redis still runs (a draining worker must not vanish
/// from the list). Each beat also records the queues' depth by state for `/metrics`. At a
/// graceful stop it says goodbye, so the worker leaves the list at once. On a thread of its own
/// (`jobq-heartbeat`), through the worker's upkeep client.
///
/// Each beat also answers an operator's requests for this worker (`controlWorker-1`: pause,
/// resume, concurrency), numbered so each is applied once; a nudge on the control channel
/// brings the next beat forward, so a request takes effect at once.
final class Heartbeat: @unchecked Sendable {
    /// What the worker reports live: running jobs, its slots now, and its state.
    struct Status: Sendable {
        var active: Int
        var concurrency: Int
        var state: String
    }

    /// An operator's request, read from the worker's record.
    enum Request: Sendable, Equatable {
        case paused(Bool)
        case concurrency(Int)
    }

    private let cores: [QueueCore]
    private let lease: Duration
    private let workerID: String
    private let fields: [HeartbeatField: String]
    private let status: @Sendable () -> Status
    private let onRequest: @Sendable (Request) -> Void
    private let trouble: TroubleLog
    private let pause = UpkeepPause()
    // Confined to the service's task.
    private var startedAt: Int?
    /// The number of the last request seen per field (nil before the first beat: requests a
    /// previous run of the same id left are not this run's).
    private var seen: [HeartbeatField: Int]?

    init(
        cores: [QueueCore], lease: Duration, workerID: String, fields: [HeartbeatField: String], trouble: TroubleLog,
        status: @escaping @Sendable () -> Status, onRequest: @escaping @Sendable (Request) -> Void
    ) {
        self.cores = cores
        self.lease = lease
        self.workerID = workerID
        self.fields = fields
        self.trouble = trouble
        self.status = status
        self.onRequest = onRequest
    }

    /// Beats now (an operator's request is waiting).
    func nudge() { pause.wake() }

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
        let live = status()
        var values: [(HeartbeatField, any RedisArgument)] = [
            (.lastSeen, now), (.active, live.active), (.started, startedAt ?? now), (.concurrency, live.concurrency), (.state, live.state),
        ]
        for (field, value) in fields.sorted(by: { $0.key.rawValue < $1.key.rawValue }) { values.append((field, value)) }
        if let wants = await trouble.call(
            cores[0], ScriptCall<HeartbeatRequests>.recordHeartbeat(scripts, workerID: workerID, expiryMs: beat * 3, fields: values))
        {
            apply(wants)
        }
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

    /// Applies the requests numbered after the last one seen.
    private func apply(_ wants: HeartbeatRequests) {
        func parse(_ text: String?) -> (seq: Int, value: String)? {
            guard let text, let colon = text.firstIndex(of: ":"), let seq = Int(text[..<colon]) else { return nil }
            return (seq, String(text[text.index(after: colon)...]))
        }
        let first = seen == nil
        var last = seen ?? [:]
        defer { seen = last }
        for (field, text) in [(HeartbeatField.wantPaused, wants.wantPaused), (.wantConcurrency, wants.wantConcurrency)] {
            guard let (seq, value) = parse(text), seq > last[field, default: 0] else { continue }
            last[field] = seq
            if first { continue }
            switch field {
            case .wantPaused: onRequest(.paused(value == "1"))
            default: if let n = Int(value) { onRequest(.concurrency(n)) }
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
