import Foundation
import Logging
import Metrics
import Synchronization

/// Renews the leases of a worker's running jobs and runs the reaper, on its own thread (a
/// ``ThreadExecutor``: the service is an async task that prefers it) and its own Redis connection
/// (a ``RedisClient`` of its own, with short deadlines), so handlers hogging Swift's cooperative
/// pool or a slow command on the main connection can never starve it (`docs/job-lifecycle.md`).
/// Every call is a `QueueCore` script call, the same the producer, the tests and the rest of the
/// worker use; reply handling (NOSCRIPT, BUSY/LOADING, MOVED/ASK, READONLY, reconnects) is the
/// client's:
/// - every L/3, one `extendLeases` call per queue (≤ 1,000 jobs each); ids reported lost fire
///   their token with `leaseLost`, ids with a cancel request fire it with `cancelled`;
/// - a queue whose leases could not be renewed for 5L/6 fires all its jobs' tokens (`leaseLost`):
///   by then another worker may have them;
/// - every L/4, per queue, the reaper (`recoverStalled`) under a `SET … NX PX` lock, so one worker
///   at a time does it.
final class LeaseKeeper: @unchecked Sendable {
    struct Run: Sendable {
        let queueIndex: Int
        let id: String
        let token: String
        let cancellation: JobCancellation
    }

    /// The worker's queues; at start, the same queues through the service's own client.
    private var cores: [QueueCore]
    private let lease: Duration
    private let workerID: String
    private let logger: Logger
    /// The lease service's own client (made at ``start()``): one connection (per primary in a
    /// cluster), deadlines short enough that the fence below is never late.
    private var client: RedisClient?
    /// The service's thread (made at ``start()``, joined at ``stop()``).
    private var executor: ThreadExecutor?
    private let lock = ConditionLock()
    // Guarded by `lock`. Runs are keyed by their lease token (the execution id), never by job id:
    // one worker may hold an old, stopped run and a new run of the same job at once (an
    // unresponsive handler, a job obliterated and re-added under the same id), and the end of
    // the old one must not touch the new one.
    private var runs: [String: Run] = [:]
    /// Tokens of the runs of each job: queueIndex + "\u{0}" + id → tokens (cancel messages name jobs).
    private var tokensByJob: [String: [String]] = [:]
    /// Runs whose finish call has been sent: a renewal that finds them no longer active is
    /// racing their own finish, not reporting a lost lease (the finish's reply says which).
    private var settling: Set<String> = []
    private var stopping = false
    private var renewNow = false
    // Confined to the service's task.
    private var lastRenewal: [ContinuousClock.Instant]
    /// When each queue's next renewal is due: L/3 after a success, a capped, jittered backoff
    /// after a failure (a failed renewal must never make the loop spin).
    private var renewalDue: [ContinuousClock.Instant]
    private var renewalFailures: [Int]
    private var lastReap: [ContinuousClock.Instant]
    private let trouble: TroubleLog
    /// Loop rounds and failed renewal tries so far (for tests: an outage must not make it spin).
    let wakeups = Atomic<Int>(0)
    let failedRenewals = Atomic<Int>(0)
    private var lastBeat: ContinuousClock.Instant?
    private var startedAt: Int?
    private let beatFields: [HeartbeatField: String]
    private let activeCount: @Sendable () -> Int

    init(
        cores: [QueueCore], lease: Duration, workerID: String, logger: Logger, beatFields: [HeartbeatField: String] = [:],
        activeCount: @escaping @Sendable () -> Int = { 0 }
    ) {
        self.cores = cores
        self.beatFields = beatFields
        self.activeCount = activeCount
        self.lease = lease
        self.workerID = workerID
        self.logger = logger
        let now = ContinuousClock.now
        self.lastRenewal = Array(repeating: now, count: cores.count)
        self.renewalDue = Array(repeating: now, count: cores.count)
        self.renewalFailures = Array(repeating: 0, count: cores.count)
        self.trouble = TroubleLog(logger: logger, what: "lease keeper")
        self.lastReap = Array(repeating: now - lease, count: cores.count)
    }

    /// The lease client's settings: the worker's server and credentials, a reply timeout of
    /// L/3 (at least 2 s), and a retry deadline of L/6, so that a call through an outage gives up
    /// in time for the fence at 5L/6 and the next try.
    static func clientConfiguration(_ base: RedisConfiguration, lease: Duration) -> RedisConfiguration {
        var c = base
        c.connectionCount = 1
        c.commandTimeout = max(.seconds(2), lease / 3)
        c.connectTimeout = min(base.connectTimeout, max(.milliseconds(500), lease / 6))
        c.retryDeadline = max(.milliseconds(200), lease / 6)
        c.backoff = RetryBackoff(base: .milliseconds(25), cap: min(.seconds(1), max(.milliseconds(50), lease / 6)))
        c.clientName = base.clientName.map { $0 + "-leases" }
        return c
    }

    private var service: Task<Void, Never>?

    func start() {
        // The same queues, through the service's own client.
        let own = RedisClient(configuration: Self.clientConfiguration(cores[0].client.configuration, lease: lease))
        client = own
        cores = cores.map { core in (try? QueueCore(name: core.name, client: own, settings: core.settings)) ?? core }
        let thread = ThreadExecutor(name: "jobq-leases")
        executor = thread
        service = Task(executorPreference: thread) { await self.loop() }
    }

    func add(_ run: Run) {
        lock.withLock {
            runs[run.token] = run
            tokensByJob["\(run.queueIndex)\u{0}\(run.id)", default: []].append(run.token)
        }
    }

    /// Forgets one run (by its token); other runs of the same job stay.
    func remove(token: String) {
        lock.withLock {
            settling.remove(token)
            guard let run = runs.removeValue(forKey: token) else { return }
            let job = "\(run.queueIndex)\u{0}\(run.id)"
            tokensByJob[job]?.removeAll { $0 == token }
            if tokensByJob[job]?.isEmpty == true { tokensByJob[job] = nil }
        }
    }

    /// Marks a run as ending: its finish call is about to be sent.
    func settle(token: String) {
        lock.withLock { _ = settling.insert(token) }
    }

    var activeRuns: [Run] { lock.withLock { Array(runs.values) } }

    /// The runs of job `id` in queue `queueIndex` this worker holds now (usually one).
    func runs(queueIndex: Int, id: String) -> [Run] {
        lock.withLock { (tokensByJob["\(queueIndex)\u{0}\(id)"] ?? []).compactMap { runs[$0] } }
    }

    /// Renews at once (after a reconnect elsewhere, a worker renews first: `docs/job-lifecycle.md`).
    func renewSoon() {
        lock.withLock { renewNow = true }
        lock.broadcast()
    }

    /// Stops the service, waits for its goodbye, then closes its client and joins its thread.
    func stop() async {
        lock.withLock { stopping = true }
        lock.broadcast()
        await service?.value
        await client?.close()
        await executor?.shutdown()
    }

    // MARK: The thread

    private func loop() async {
        let renewEvery = lease / 3
        let reapEvery = lease / 4
        while true {
            let now = ContinuousClock.now
            var nextWake = now + min(renewEvery, reapEvery)
            let forced = lock.withLock { renewNow }
            var renewalFailed = false
            for index in cores.indices {
                if now >= renewalDue[index] || forced {
                    if await !renew(index) { renewalFailed = true }
                }
                // While Redis is away each call waits out the client's deadline: a round whose
                // renewal failed leaves the reaper and the heartbeat for later, so renewals (what
                // keeps jobs) are retried on their own backoff, not behind them.
                if now - lastReap[index] >= reapEvery {
                    if !renewalFailed { await reap(index) }
                    lastReap[index] = now
                }
                nextWake = min(nextWake, renewalDue[index], lastReap[index] + reapEvery)
                // Also wake for the fence, so a queue that cannot renew stops its jobs on time —
                // only while it lies ahead: once passed (Redis still down) it must not make the
                // loop spin.
                let fenceAt = lastRenewal[index] + lease * 5 / 6
                if fenceAt > now { nextWake = min(nextWake, fenceAt) }
            }
            lock.withLock { renewNow = false }
            fence()
            if lastBeat.map({ ContinuousClock.now - $0 >= renewEvery }) ?? true {
                if !renewalFailed { await heartbeat() }
                lastBeat = .now
            }
            if let beat = lastBeat { nextWake = min(nextWake, beat + renewEvery) }
            trouble.summarizeIfDue()
            // The wait blocks the service's own thread (its executor runs nothing else), never a
            // thread of the cooperative pool.
            lock.lock()
            if stopping {
                lock.unlock()
                await leave()
                return
            }
            wakeups.add(1, ordering: .relaxed)
            let wait = nextWake - ContinuousClock.now
            if wait > .zero, !renewNow { lock.wait(for: wait) }
            let exit = stopping
            lock.unlock()
            if exit {
                await leave()
                return
            }
        }
    }

    /// Renews one queue's runs; false when a call failed (the queue backs off).
    @discardableResult
    private func renew(_ index: Int) async -> Bool {
        // Runs still running, and runs whose finish is in flight (it may be retried through an
        // outage: its lease must not run out meanwhile). A lost report for the latter is ignored.
        let mine = lock.withLock { runs.values.filter { $0.queueIndex == index && (settling.contains($0.token) || !$0.cancellation.isFired) } }
        let started = ContinuousClock.now
        if mine.isEmpty {
            renewed(index, at: started)
            return true
        }
        var start = 0
        var ok = true
        while start < mine.count {
            let chunk = Array(mine[start..<min(start + 1000, mine.count)])
            start += chunk.count
            let core = cores[index]
            guard let answer = await call(core, core.extendLeasesCall(chunk.map { ($0.id, $0.token) }, length: lease)) else {
                ok = false
                break
            }
            for token in answer.lost {
                // A run that began to finish (or has finished) since the snapshot is racing its
                // own finish, whose reply is the one that tells: only a run still running lost it.
                let run: Run? = lock.withLock { settling.contains(token) ? nil : runs[token] }
                if let run, run.cancellation.fire(.leaseLost) {
                    logger.warning(
                        "lease lost: the job is no longer held by this worker",
                        metadata: ["queue": "\(core.name)", "job": "\(run.id)", "execution": "\(token)"])
                }
            }
            for token in answer.cancelRequested {
                lock.withLock { runs[token] }?.cancellation.fire(.cancelled)
            }
        }
        if ok {
            renewed(index, at: started)
        } else {
            // Back off (capped, jittered) instead of retrying at once; the fence still stops the
            // queue's jobs at 5L/6 without a renewal.
            renewalFailures[index] += 1
            failedRenewals.add(1, ordering: .relaxed)
            let cap = min(Duration.seconds(1), lease / 6)
            let base = min(cap, .milliseconds(50) * (1 << min(renewalFailures[index], 10)))
            renewalDue[index] = ContinuousClock.now + base * Double.random(in: 0.5...1.0)
        }
        return ok
    }

    private func renewed(_ index: Int, at instant: ContinuousClock.Instant) {
        lastRenewal[index] = instant
        renewalDue[index] = instant + lease / 3
        renewalFailures[index] = 0
    }

    /// Self-fencing: a queue not renewed for 5L/6 fires its jobs' tokens.
    private func fence() {
        let now = ContinuousClock.now
        for index in cores.indices where now - lastRenewal[index] >= lease * 5 / 6 {
            for run in activeRuns where run.queueIndex == index {
                if run.cancellation.fire(.leaseLost) {
                    logger.error(
                        "leases not renewed for 5/6 of their length: stopping the job", metadata: ["queue": "\(cores[index].name)", "job": "\(run.id)"])
                }
            }
        }
    }

    private func reap(_ index: Int) async {
        let core = cores[index]
        // One worker at a time per queue: the script takes the lock (it lapses by itself), so
        // reaping goes on under OOM like renewal.
        for _ in 0..<10 {
            guard let v = await call(core, core.recoverStalledCall(batch: 1000, holder: workerID, lockMs: Int64(max(1, (lease / 4).milliseconds)))),
                v.remaining >= 0
            else { return }
            if v.requeued > 0 { Counter(label: "jobq_jobs_stalled_total", dimensions: [("queue", core.name)]).increment(by: v.requeued) }
            if v.requeued + v.failed + v.cancelled > 0 {
                logger.warning(
                    "recovered stalled jobs",
                    metadata: ["queue": "\(core.name)", "requeued": "\(v.requeued)", "failed": "\(v.failed)", "cancelled": "\(v.cancelled)"])
            }
            if v.remaining == 0 { return }
        }
    }

    /// Heartbeat: `jobq:workers` ZSET (score = Redis time of the last beat) and a hash per worker
    /// that expires after 3 beats, so `jobq-admin workers` lists live workers. Both are scripts
    /// that a full Redis still runs (a draining worker must not vanish from the list).
    private func heartbeat() async {
        let beat = max(1, (lease / 3).milliseconds)
        let scripts = cores[0].scripts
        guard let now = await call(cores[0], ScriptCall<Int>.registerWorker(scripts, workerID: workerID, expiryMs: Int64(beat * 3))) else { return }
        if startedAt == nil { startedAt = now }
        var fields: [(HeartbeatField, any RedisArgument)] = [(.lastSeen, now), (.active, activeCount()), (.started, startedAt ?? now)]
        for (field, value) in beatFields.sorted(by: { $0.key.rawValue < $1.key.rawValue }) { fields.append((field, value)) }
        _ = await call(cores[0], ScriptCall<Void>.recordHeartbeat(scripts, workerID: workerID, expiryMs: Int64(beat * 3), fields: fields))
        // Queue depth by state, for /metrics.
        for core in cores {
            guard let counts = await call(core, core.countJobsCall()) else { continue }
            let byState: [(JobState, Int)] = [
                (.waiting, counts.waiting), (.delayed, counts.delayed), (.active, counts.active),
                (.completed, counts.completed), (.failed, counts.failed), (.cancelled, counts.cancelled),
            ]
            for (state, value) in byState {
                Gauge(label: "jobq_queue_jobs", dimensions: [("queue", core.name), ("state", state.rawValue)]).record(value)
            }
        }
    }

    /// Says goodbye at a graceful stop, so the worker leaves the list at once.
    private func leave() async {
        guard let client else { return }
        do {
            _ = try await client.send(RedisCommand("ZREM", QueueKeys.workerRegistry, workerID), idempotent: true)
            _ = try await client.send(RedisCommand("UNLINK", WorkerInfo.key(for: workerID)), idempotent: true)
        } catch {
            trouble.failed("could not leave the worker list: \(error)")
        }
    }

    /// One script call through the service's client; nil when it failed (the trouble log says
    /// why, and the caller's schedule decides when to try again).
    private func call<Reply>(_ core: QueueCore, _ call: ScriptCall<Reply>) async -> Reply? {
        do {
            let reply = try await core.call(call)
            trouble.succeeded()
            return reply
        } catch {
            // One wording for every script while Redis is away, so an outage is one warning and
            // a summary, not a line each time the failing script changes.
            if error.code == .redis, let redis = error.redisError {
                trouble.failed("cannot reach Redis: \(redis)")
            } else {
                trouble.failed("\(call.script.name): \(error)")
            }
            return nil
        }
    }
}
