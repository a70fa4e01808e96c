import Logging
import Synchronization

/// Keeps the leases of a worker's running jobs, on a thread of its own (its async task prefers a
/// ``ThreadExecutor`` that runs nothing else) and the connection of the worker's upkeep client
/// (short deadlines), so handlers hogging Swift's cooperative pool or a slow command on the
/// main connections can never starve it (`docs/job-lifecycle.md`). Each call is a `QueueCore`
/// script call, the same the tests make; reply handling (NOSCRIPT, BUSY/LOADING, MOVED/ASK,
/// READONLY, reconnects) is the client's.
///
/// - every L/3, one `extendLeases` call per queue (≤ 1,000 jobs each) for the runs in the
///   ``RunRegistry``; runs reported lost fire their token with `leaseLost`, runs whose job has a
///   cancel request fire it with `cancelled`;
/// - a failed renewal backs off (capped, jittered) instead of retrying at once;
/// - a queue whose leases could not be renewed for 5L/6 fires all its runs' tokens
///   (`leaseLost`): by then another worker may have them.
final class LeaseService: @unchecked Sendable {
    /// The worker's queues, through the upkeep client.
    private let cores: [QueueCore]
    private let registry: RunRegistry
    private let lease: Duration
    private let logger: Logger
    private let trouble: TroubleLog
    private let pause = UpkeepPause()
    // Confined to the service's task.
    private var lastRenewal: [ContinuousClock.Instant]
    /// When each queue's next renewal is due: L/3 after a success, a capped, jittered backoff
    /// after a failure (a failed renewal must never make the loop spin).
    private var renewalDue: [ContinuousClock.Instant]
    private var renewalFailures: [Int]
    /// Loop rounds and failed renewal tries so far (for tests: an outage must not make it spin).
    let wakeups = Atomic<Int>(0)
    let failedRenewals = Atomic<Int>(0)

    init(cores: [QueueCore], registry: RunRegistry, lease: Duration, logger: Logger, trouble: TroubleLog) {
        self.cores = cores
        self.registry = registry
        self.lease = lease
        self.logger = logger
        self.trouble = trouble
        let now = ContinuousClock.now
        self.lastRenewal = Array(repeating: now, count: cores.count)
        self.renewalDue = Array(repeating: now, count: cores.count)
        self.renewalFailures = Array(repeating: 0, count: cores.count)
    }

    /// The upkeep client's settings (lease renewal, reaper, heartbeat): the worker's server and
    /// credentials, one connection, a reply timeout of L/3 (at least 2 s), and a retry deadline of
    /// L/6, so that a renewal through an outage gives up in time for the fence at 5L/6 and the
    /// next try.
    static func clientConfiguration(_ base: RedisConfiguration, lease: Duration) -> RedisConfiguration {
        var c = base
        c.connectionCount = 1
        c.commandTimeout = max(.seconds(2), lease / 3)
        c.connectTimeout = min(base.connectTimeout, max(.milliseconds(500), lease / 6))
        c.retryDeadline = max(.milliseconds(200), lease / 6)
        c.backoff = RetryBackoff(base: .milliseconds(25), cap: min(.seconds(1), max(.milliseconds(50), lease / 6)))
        c.clientName = base.clientName.map { $0 + "-upkeep" }
        return c
    }

    /// Renews until ``stop()``, on the thread `jobq-leases` (joined before this returns).
    func run() async {
        await ThreadExecutor.withThread(named: "jobq-leases") { await loop() }
    }

    /// Renews at once (after a reconnect elsewhere, a worker renews first: `docs/job-lifecycle.md`).
    func renewSoon() { pause.wake() }

    func stop() { pause.stop() }

    private func loop() async {
        while !pause.isStopping {
            let now = ContinuousClock.now
            var nextWake = now + lease / 3
            for index in cores.indices {
                if now >= renewalDue[index] { await renew(index) }
                nextWake = min(nextWake, renewalDue[index])
                // Also wake for the fence, so a queue that cannot renew stops its jobs on time —
                // only while it lies ahead: once passed (Redis still down) it must not make the
                // loop spin.
                let fenceAt = lastRenewal[index] + lease * 5 / 6
                if fenceAt > now { nextWake = min(nextWake, fenceAt) }
            }
            fence()
            trouble.summarizeIfDue()
            wakeups.add(1, ordering: .relaxed)
            // A wake (renewSoon) makes every queue due at once.
            let woken = pause.wait(until: nextWake)
            if woken, ContinuousClock.now < nextWake {
                for index in cores.indices { renewalDue[index] = min(renewalDue[index], .now) }
            }
        }
    }

    /// Renews one queue's runs; false when a call failed (the queue backs off).
    @discardableResult
    private func renew(_ index: Int) async -> Bool {
        let mine = registry.renewable(queueIndex: index)
        let started = ContinuousClock.now
        if mine.isEmpty {
            renewed(index, at: started)
            return true
        }
        var start = 0
        var ok = true
        let core = cores[index]
        while start < mine.count {
            let chunk = Array(mine[start..<min(start + 1000, mine.count)])
            start += chunk.count
            guard let answer = await trouble.call(core, core.extendLeasesCall(chunk.map { ($0.id, $0.token) }, length: lease)) else {
                ok = false
                break
            }
            for token in answer.lost {
                // A run that began to finish (or has finished) since the snapshot is racing its
                // own finish, whose reply is the one that tells: only a run still running lost it.
                if let run = registry.running(token: token), run.cancellation.fire(.leaseLost) {
                    logger.warning(
                        "lease lost: the job is no longer held by this worker",
                        metadata: ["queue": "\(core.name)", "job": "\(run.id)", "execution": "\(token)"])
                }
            }
            for token in answer.cancelRequested {
                registry.run(token: token)?.cancellation.fire(.cancelled)
            }
        }
        if ok {
            renewed(index, at: started)
        } else {
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

    /// Self-fencing: a queue not renewed for 5L/6 fires its runs' tokens.
    private func fence() {
        let now = ContinuousClock.now
        for index in cores.indices where now - lastRenewal[index] >= lease * 5 / 6 {
            for run in registry.all where run.queueIndex == index {
                if run.cancellation.fire(.leaseLost) {
                    logger.error(
                        "leases not renewed for 5/6 of their length: stopping the job", metadata: ["queue": "\(cores[index].name)", "job": "\(run.id)"])
                }
            }
        }
    }
}
