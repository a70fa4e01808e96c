import Synchronization

/// The one place a worker tracks its running jobs: each run's token, its deadline and its slot,
/// keyed by execution id (the lease token). The fetchers add runs, the runner ends them, and the
/// services that stop jobs — the lease service (a lost lease, a stored cancel request), the
/// cancel listener (a cancel message), the deadlines (a timeout), the drain (shutdown) — find
/// them here and fire their tokens.
///
/// Runs are keyed by execution id, never by job id: one worker may hold an old, stopped run and
/// a new run of the same job at once (an unresponsive handler, a job obliterated and re-added
/// under the same id), and the end of the old one must not touch the new one.
final class RunRegistry: Sendable {
    struct Run: Sendable {
        let queueIndex: Int
        let id: String
        let token: String
        let cancellation: JobCancellation
    }

    private struct State {
        var runs: [String: Run] = [:]
        /// Execution ids of each job's runs: queueIndex + "\u{0}" + id → tokens (cancel messages
        /// name jobs, not runs).
        var tokensByJob: [String: [String]] = [:]
        /// Runs whose finish call has been sent: a renewal that finds them no longer active is
        /// racing their own finish, not reporting a lost lease (the finish's reply says which).
        var settling: Set<String> = []
        /// Each run's timeout timer.
        var deadlines: [String: UInt64] = [:]
        var settleWaiters: [CheckedContinuation<Void, Never>] = []
    }

    /// The worker's slots, shared by weight across its queues.
    let slots: SlotGate
    private let deadlines = TimeoutTimers(clock: ContinuousClock())
    private let state = Mutex(State())

    init(capacity: Int, quotas: [Int]) {
        self.slots = SlotGate(capacity: capacity, quotas: quotas)
    }

    /// Adds a run of job `id` (in its slot) under execution id `token`; returns its token.
    func begin(_ queueIndex: Int, id: String, token: String) -> JobCancellation {
        let cancellation = JobCancellation()
        let run = Run(queueIndex: queueIndex, id: id, token: token, cancellation: cancellation)
        state.withLock { s in
            s.runs[token] = run
            s.tokensByJob[Self.jobKey(queueIndex, id), default: []].append(token)
        }
        return cancellation
    }

    /// Fires the run's token with `timeout` at `deadline`, unless it ends first.
    func startDeadline(token: String, at deadline: ContinuousClock.Instant) {
        guard let run = state.withLock({ $0.runs[token] }) else { return }
        let timer = deadlines.add(at: deadline) { run.cancellation.fire(.timeout) }
        state.withLock { $0.deadlines[token] = timer }
    }

    /// The handler is done (or was given up on): its deadline no longer matters.
    func stopDeadline(token: String) {
        if let timer = state.withLock({ $0.deadlines.removeValue(forKey: token) }) { deadlines.remove(timer) }
    }

    /// Marks a run as ending: its finish call is about to be sent.
    func settling(token: String) {
        state.withLock { _ = $0.settling.insert(token) }
    }

    /// Forgets one run (other runs of the same job stay); resumes ``waitUntilSettled()`` when it
    /// was the last.
    func end(token: String) {
        stopDeadline(token: token)
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.settling.remove(token)
            if let run = s.runs.removeValue(forKey: token) {
                let job = Self.jobKey(run.queueIndex, run.id)
                s.tokensByJob[job]?.removeAll { $0 == token }
                if s.tokensByJob[job]?.isEmpty == true { s.tokensByJob[job] = nil }
            }
            guard s.runs.isEmpty else { return [] }
            defer { s.settleWaiters = [] }
            return s.settleWaiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Every run held now.
    var all: [Run] { state.withLock { Array($0.runs.values) } }

    var count: Int { state.withLock { $0.runs.count } }

    /// The runs of job `id` in queue `queueIndex` (usually one).
    func runs(queueIndex: Int, id: String) -> [Run] {
        state.withLock { s in (s.tokensByJob[Self.jobKey(queueIndex, id)] ?? []).compactMap { s.runs[$0] } }
    }

    /// The runs of queue `queueIndex` whose leases must be kept: those still running, and those
    /// whose finish is in flight (it may be retried through an outage: the lease must not run
    /// out meanwhile).
    func renewable(queueIndex: Int) -> [Run] {
        state.withLock { s in
            s.runs.values.filter { $0.queueIndex == queueIndex && (s.settling.contains($0.token) || !$0.cancellation.isFired) }
        }
    }

    /// The run under `token` unless it is settling (then its finish's reply tells what happened).
    func running(token: String) -> Run? {
        state.withLock { s in s.settling.contains(token) ? nil : s.runs[token] }
    }

    func run(token: String) -> Run? {
        state.withLock { $0.runs[token] }
    }

    /// Returns once no run is held.
    func waitUntilSettled() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = state.withLock { s -> Bool in
                if s.runs.isEmpty { return true }
                s.settleWaiters.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }

    private static func jobKey(_ queueIndex: Int, _ id: String) -> String { "\(queueIndex)\u{0}\(id)" }
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
