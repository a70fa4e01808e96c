internal import CHiredis
import Foundation
import Logging
import Metrics
import Synchronization

/// Renews the leases of a worker's running jobs and runs the reaper, on its own thread and its
/// own Redis connection, so handlers hogging Swift's cooperative pool can never starve it
/// (`docs/job-lifecycle.md`):
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

    private let cores: [QueueCore]
    private let lease: Duration
    private let workerID: String
    private let logger: Logger
    private let configuration: RedisConfiguration
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
    private var stopped = false
    private var renewNow = false
    // Thread-confined.
    /// One connection per node (one in all but cluster mode).
    private var connections: [RedisEndpoint: RedisConnection] = [:]
    private let router: RedisClusterRouter?
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
        self.configuration = cores[0].client.configuration
        self.router = cores[0].client.cluster
        let now = ContinuousClock.now
        self.lastRenewal = Array(repeating: now, count: cores.count)
        self.renewalDue = Array(repeating: now, count: cores.count)
        self.renewalFailures = Array(repeating: 0, count: cores.count)
        self.trouble = TroubleLog(logger: logger, what: "lease keeper")
        self.lastReap = Array(repeating: now - lease, count: cores.count)
    }

    func start() {
        let thread = Thread { [self] in self.loop() }
        thread.name = "jobq-leases"
        thread.start()
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

    /// Stops the thread and waits for it (from a thread that may block: not the cooperative pool).
    func stop() async {
        lock.withLock { stopping = true }
        lock.broadcast()
        // Poll briefly from the pool without blocking a thread: the loop exits within one wait.
        for _ in 0..<2000 {
            if lock.withLock({ stopped }) { return }
            try? await Task.sleep(for: .milliseconds(5))
        }
    }

    // MARK: The thread

    private func loop() {
        CHiredis_nameThread("jobq-leases")
        let renewEvery = lease / 3
        let reapEvery = lease / 4
        while true {
            let now = ContinuousClock.now
            var nextWake = now + min(renewEvery, reapEvery)
            let forced = lock.withLock { renewNow }
            for index in cores.indices {
                if now >= renewalDue[index] || forced {
                    renew(index)
                }
                if now - lastReap[index] >= reapEvery {
                    reap(index)
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
                heartbeat()
                lastBeat = .now
            }
            if let beat = lastBeat { nextWake = min(nextWake, beat + renewEvery) }
            trouble.summarizeIfDue()
            lock.lock()
            if stopping {
                lock.unlock()
                leave()
                lock.withLock { stopped = true }
                for c in connections.values { c.close() }
                return
            }
            wakeups.add(1, ordering: .relaxed)
            let wait = nextWake - ContinuousClock.now
            if wait > .zero, !renewNow { lock.wait(for: wait) }
            let exit = stopping
            lock.unlock()
            if exit {
                leave()
                lock.withLock { stopped = true }
                for c in connections.values { c.close() }
                return
            }
        }
    }

    private func renew(_ index: Int) {
        // Runs still running, and runs whose finish is in flight (it may be retried through an
        // outage: its lease must not run out meanwhile). A lost report for the latter is ignored.
        let mine = lock.withLock { runs.values.filter { $0.queueIndex == index && (settling.contains($0.token) || !$0.cancellation.isFired) } }
        let started = ContinuousClock.now
        if mine.isEmpty {
            renewed(index, at: started)
            return
        }
        var start = 0
        var ok = true
        while start < mine.count {
            let chunk = Array(mine[start..<min(start + 1000, mine.count)])
            start += chunk.count
            let core = cores[index]
            guard let answer = call(core.extendLeasesCall(chunk.map { ($0.id, $0.token) }, length: lease)) else {
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

    private func reap(_ index: Int) {
        let core = cores[index]
        // One worker at a time per queue: the script takes the lock (it lapses by itself), so
        // reaping goes on under OOM like renewal.
        for _ in 0..<10 {
            guard let v = call(core.recoverStalledCall(batch: 1000, holder: workerID, lockMs: Int64(max(1, (lease / 4).milliseconds)))),
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
    private func heartbeat() {
        let beat = max(1, (lease / 3).milliseconds)
        let scripts = cores[0].scripts
        guard let now = call(ScriptCall<Int>.registerWorker(scripts, workerID: workerID, expiryMs: Int64(beat * 3))) else { return }
        if startedAt == nil { startedAt = now }
        var fields: [(HeartbeatField, any RedisArgument)] = [(.lastSeen, now), (.active, activeCount()), (.started, startedAt ?? now)]
        for (field, value) in beatFields.sorted(by: { $0.key.rawValue < $1.key.rawValue }) { fields.append((field, value)) }
        _ = call(ScriptCall<Void>.recordHeartbeat(scripts, workerID: workerID, expiryMs: Int64(beat * 3), fields: fields))
        // Queue depth by state, for /metrics.
        for core in cores {
            guard let counts = call(core.countJobsCall()) else { continue }
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
    private func leave() {
        _ = command(RedisCommand("ZREM", QueueKeys.workerRegistry, workerID), key: QueueKeys.workerRegistry)
        _ = command(RedisCommand("UNLINK", WorkerInfo.key(for: workerID)), key: WorkerInfo.key(for: workerID))
    }

    // MARK: Redis, synchronously, on this thread

    /// The connection to the node holding `key`: the server (Sentinel mode: the primary, asked
    /// for at connect), or in a cluster the primary owning the key's slot in the client's map.
    private func connected(forKey key: String) -> RedisConnection? {
        var target = configuration.endpoint
        if let router {
            guard let owner = router.known(RedisClusterSlot.of(key)) else {
                router.refreshSoon()
                return nil
            }
            target = owner
        }
        if let c = connections[target], c.isConnected { return c }
        let c = RedisConnection(configuration: router == nil ? configuration : configuration.node(target), replyTimeout: max(.seconds(2), lease / 3))
        do {
            try c.connect()
            connections[target] = c
            return c
        } catch {
            trouble.failed("cannot reach Redis: \(error)")
            connections[target] = nil
            router?.refreshSoon()
            return nil
        }
    }

    private func dropConnection(_ c: RedisConnection) {
        c.close()
        for (endpoint, known) in connections where known === c { connections[endpoint] = nil }
        router?.refreshSoon()
    }

    /// An error reply that says the map or the primary has changed: re-read or reconnect, so the
    /// next round goes to the right node (the round itself is retried by the loop's schedule).
    private func redirected(_ reply: RedisReply, on c: RedisConnection) -> Bool {
        switch reply.errorCode {
        case "MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN":
            router?.refreshSoon()
            return true
        case "READONLY":
            // A demoted primary (Sentinel failover): connect again, asking the sentinels.
            dropConnection(c)
            return true
        default:
            return false
        }
    }

    private func command(_ command: RedisCommand, key: String) -> RedisReply? {
        guard let c = connected(forKey: key) else { return nil }
        do {
            let reply = try c.roundTrip(command)
            if redirected(reply, on: c) { return nil }
            if let message = reply.errorMessage {
                trouble.failed("\(command.name) failed: \(message)")
            } else {
                trouble.succeeded()
            }
            return reply
        } catch {
            trouble.failed("lost the connection to Redis: \(error)")
            dropConnection(c)
            return nil
        }
    }

    /// One script call, synchronously; nil when it could not be made or its reply makes no sense
    /// (the trouble log has said why).
    private func call<Reply>(_ call: ScriptCall<Reply>) -> Reply? {
        guard let reply = send(call.script, keys: call.keys, arguments: call.arguments) else { return nil }
        do {
            return try call.decode(reply)
        } catch {
            trouble.failed("\(call.script.name): \(error)")
            return nil
        }
    }

    /// EVALSHA, with one EVAL when the server does not know the script.
    private func send(_ script: RedisScript, keys: [String], arguments: [any RedisArgument]) -> RedisReply? {
        guard let c = connected(forKey: keys.first ?? QueueKeys.workerRegistry) else { return nil }
        var tail = RedisCommand()
        tail.append(keys.count)
        tail.append(contentsOf: keys)
        tail.append(contentsOf: arguments)
        do {
            var reply: RedisReply
            if let sha = script.sha {
                c.append(prefix: [Array("EVALSHA".utf8), Array(sha.utf8)], tail)
                reply = try c.readReply()
                if reply.errorCode == "NOSCRIPT" {
                    c.append(prefix: [Array("EVAL".utf8), Array(script.source.utf8)], tail)
                    reply = try c.readReply()
                }
            } else {
                c.append(prefix: [Array("EVAL".utf8), Array(script.source.utf8)], tail)
                reply = try c.readReply()
            }
            if redirected(reply, on: c) {
                logger.debug("\(script.name) redirected: \(reply.errorMessage ?? "")")
                return nil
            }
            if let message = reply.errorMessage {
                trouble.failed("\(script.name) failed: \(message)")
                return nil
            }
            trouble.succeeded()
            return reply
        } catch {
            trouble.failed("lost the connection to Redis: \(error)")
            dropConnection(c)
            return nil
        }
    }
}
