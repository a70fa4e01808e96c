import Synchronization

/// The worker's N slots, shared by weight across its queues (`docs/job-lifecycle.md`): a queue may fill slots
/// up to its quota, and beyond it while every other queue is idle (its fetcher blocked on an
/// empty queue). Waiting for a slot is an `await`, never a blocked thread. N and the quotas can
/// change while the worker runs, and the gate can be paused (quiet: runs finish, none start).
final class SlotGate: Sendable {
    private struct State {
        var capacity: Int
        var quotas: [Int]
        var paused = false
        var active = 0
        var activeByQueue: [Int]
        var idle: [Bool]
        var waiters: [(queue: Int, continuation: CheckedContinuation<Bool, Never>)] = []
        var closed = false
        var emptyWaiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state: Mutex<State>

    init(capacity: Int, quotas: [Int]) {
        self.state = Mutex(
            State(
                capacity: capacity, quotas: quotas, activeByQueue: Array(repeating: 0, count: quotas.count),
                idle: Array(repeating: false, count: quotas.count)))
    }

    var capacity: Int { state.withLock { $0.capacity } }
    var isPaused: Bool { state.withLock { $0.paused } }

    private static func allowed(_ s: State, _ q: Int, continuing: Bool) -> Bool {
        if s.paused { return false }
        let othersIdle = s.idle.indices.allSatisfy { $0 == q || s.idle[$0] }
        if continuing {
            // The slot is already counted: keep it while within the share (and the capacity,
            // which may have been lowered).
            return s.active <= s.capacity && (s.activeByQueue[q] <= s.quotas[q] || othersIdle)
        }
        return s.active < s.capacity && (s.activeByQueue[q] < s.quotas[q] || othersIdle)
    }

    /// A new number of slots and quotas: more let waiting fetchers in at once; fewer take
    /// effect as runs end (a run over the new number does not continue in its slot).
    func resize(capacity: Int, quotas: [Int]) {
        let wake = state.withLock { s -> [(CheckedContinuation<Bool, Never>, Bool)] in
            s.capacity = capacity
            s.quotas = quotas
            return Self.admit(&s)
        }
        for (c, v) in wake { c.resume(returning: v) }
    }

    /// Paused, no slot is given and no run continues in its slot; resumed, waiters are let in.
    func setPaused(_ paused: Bool) {
        let wake = state.withLock { s -> [(CheckedContinuation<Bool, Never>, Bool)] in
            s.paused = paused
            return Self.admit(&s)
        }
        for (c, v) in wake { c.resume(returning: v) }
    }

    /// Waits for a slot for queue `q`; false once the gate is closed (shutting down).
    func acquire(_ q: Int) async -> Bool {
        await withCheckedContinuation { continuation in
            let ready: Bool? = state.withLock { s in
                if s.closed { return false }
                if Self.allowed(s, q, continuing: false) {
                    s.active += 1
                    s.activeByQueue[q] += 1
                    return true
                }
                s.waiters.append((q, continuation))
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }

    /// Whether a run of queue `q` that just finished may take the queue's next job in its slot.
    func mayContinue(_ q: Int) -> Bool {
        state.withLock { s in !s.closed && Self.allowed(s, q, continuing: true) }
    }

    func release(_ q: Int) {
        let (wake, empty) = state.withLock { s -> ([(CheckedContinuation<Bool, Never>, Bool)], [CheckedContinuation<Void, Never>]) in
            s.active -= 1
            s.activeByQueue[q] -= 1
            var empty: [CheckedContinuation<Void, Never>] = []
            if s.active == 0 {
                empty = s.emptyWaiters
                s.emptyWaiters = []
            }
            return (Self.admit(&s), empty)
        }
        for (c, v) in wake { c.resume(returning: v) }
        for c in empty { c.resume() }
    }

    /// Marks queue `q` idle (its fetcher waits on an empty queue) or busy again.
    func setIdle(_ q: Int, _ idle: Bool) {
        let wake = state.withLock { s -> [(CheckedContinuation<Bool, Never>, Bool)] in
            s.idle[q] = idle
            return Self.admit(&s)
        }
        for (c, v) in wake { c.resume(returning: v) }
    }

    private static func admit(_ s: inout State) -> [(CheckedContinuation<Bool, Never>, Bool)] {
        var out: [(CheckedContinuation<Bool, Never>, Bool)] = []
        var i = 0
        while i < s.waiters.count {
            let (q, c) = s.waiters[i]
            if allowed(s, q, continuing: false) {
                s.active += 1
                s.activeByQueue[q] += 1
                out.append((c, true))
                s.waiters.remove(at: i)
            } else {
                i += 1
            }
        }
        return out
    }

    /// Refuses further slots; waiting fetchers get false.
    func close() {
        let waiters = state.withLock { s -> [CheckedContinuation<Bool, Never>] in
            s.closed = true
            defer { s.waiters = [] }
            return s.waiters.map(\.continuation)
        }
        for c in waiters { c.resume(returning: false) }
    }

    var activeCount: Int { state.withLock { $0.active } }

    /// Returns when no slot is in use.
    func waitUntilEmpty() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now: Bool = state.withLock { s in
                if s.active == 0 { return true }
                s.emptyWaiters.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }
}
