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
                lock.unlock()
                lock.broadcast()
                return
            }
            let batch = jobs
            jobs.removeAll(keepingCapacity: true)
            lock.unlock()
            for job in batch { job.runSynchronously(on: asUnownedTaskExecutor()) }
        }
    }

    /// Lets the thread finish what is queued, then end; waits for it without blocking a pool
    /// thread (a few short sleeps).
    func shutdown() async {
        lock.withLock { stopping = true }
        lock.broadcast()
        for _ in 0..<2000 {
            if lock.withLock({ exited }) { return }
            try? await Task.sleep(for: .milliseconds(1))
        }
    }
}
