import Foundation

/// A task executor with one thread of its own: a task started with it as its preference runs
/// all its nonisolated async code (Redis calls, retries, sleeps) on that thread, never on
/// Swift's cooperative pool. Handlers that block the pool cannot starve such a task — the lease
/// service renews and reaps through the same `QueueCore` calls as everything else, yet keeps
/// running when every pool thread is stuck.
///
/// The owner calls ``shutdown()`` once the tasks using it have ended; it joins the thread.
final class ThreadExecutor: TaskExecutor, @unchecked Sendable {
    private let lock = ConditionLock()
    // Guarded by `lock`.
    private var jobs: [UnownedJob] = []
    private var stopping = false
    private var exited = false
    private var exitWaiters: [CheckedContinuation<Void, Never>] = []

    init(name: String) {
        let thread = Thread { [self] in self.loop() }
        thread.name = name
        thread.start()
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        let accepted = lock.withLock { () -> Bool in
            guard !exited else { return false }
            jobs.append(unowned)
            return true
        }
        if accepted {
            lock.signal()
        } else {
            // After shutdown, a straggler (a finish retried past the drain) goes on on the pool
            // rather than never running.
            globalConcurrentExecutor.enqueue(unowned)
        }
    }

    func asUnownedTaskExecutor() -> UnownedTaskExecutor {
        UnownedTaskExecutor(ordinary: self)
    }

    private func loop() {
        while true {
            lock.lock()
            while jobs.isEmpty && !stopping { lock.wait() }
            if jobs.isEmpty && stopping {
                exited = true
                let waiters = exitWaiters
                exitWaiters = []
                lock.unlock()
                for waiter in waiters { waiter.resume() }
                return
            }
            let batch = jobs
            jobs.removeAll(keepingCapacity: true)
            lock.unlock()
            for job in batch { job.runSynchronously(on: asUnownedTaskExecutor()) }
        }
    }

    /// Lets the thread finish what is queued, then end; resumes once it has (the thread's last
    /// act), without blocking the caller's thread. Call it from a task that does not prefer this
    /// executor.
    func shutdown() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let done = lock.withLock { () -> Bool in
                stopping = true
                if exited { return true }
                exitWaiters.append(continuation)
                return false
            }
            if done { continuation.resume() } else { lock.broadcast() }
        }
    }

    /// Runs `body` on a new thread of its own (`body`'s nonisolated async code prefers it) and
    /// joins the thread before returning.
    static func withThread<T: Sendable>(named name: String, _ body: () async -> T) async -> T {
        let executor = ThreadExecutor(name: name)
        let result = await withTaskExecutorPreference(executor) { await body() }
        await executor.shutdown()
        return result
    }
}

/// The pause between rounds of a worker's upkeep service (lease renewal, reaper, heartbeat):
/// it blocks the service's own thread (a ``ThreadExecutor`` that runs nothing else, never a
/// pool thread) until the next round is due, a ``wake()``, or ``stop()``.
final class UpkeepPause: @unchecked Sendable {
    private let lock = ConditionLock()
    // Guarded by `lock`.
    private var stopping = false
    private var woken = false

    /// Waits until `instant`, a wake or a stop; false once the service is stopping.
    func wait(until instant: ContinuousClock.Instant) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        while !stopping {
            if woken {
                woken = false
                return true
            }
            let left = instant - ContinuousClock.now
            if left <= .zero { return true }
            lock.wait(for: left)
        }
        return false
    }

    /// Ends the current pause (or the next one) at once.
    func wake() {
        lock.withLock { woken = true }
        lock.broadcast()
    }

    func stop() {
        lock.withLock { stopping = true }
        lock.broadcast()
    }

    var isStopping: Bool { lock.withLock { stopping } }
}
