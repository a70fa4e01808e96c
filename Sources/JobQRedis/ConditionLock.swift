import CHiredis

#if canImport(Glibc)
    import Glibc
#endif

/// A mutex with a condition variable (monotonic clock), for the threads that own Redis connections.
///
/// - Important: only for code running on our own threads. Never wait on it from Swift's
///   cooperative pool; `lock`/`unlock` around short critical sections are fine anywhere.
package final class ConditionLock: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let cond = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    package init() {
        pthread_mutex_init(mutex, nil)
        var attr = pthread_condattr_t()
        pthread_condattr_init(&attr)
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)
        pthread_cond_init(cond, &attr)
        pthread_condattr_destroy(&attr)
    }

    deinit {
        pthread_cond_destroy(cond)
        pthread_mutex_destroy(mutex)
        cond.deallocate()
        mutex.deallocate()
    }

    package func lock() { pthread_mutex_lock(mutex) }
    package func unlock() { pthread_mutex_unlock(mutex) }

    package func withLock<T>(_ body: () throws -> T) rethrows -> T {
        lock()
        defer { unlock() }
        return try body()
    }

    /// Waits (lock held) until signalled.
    package func wait() { pthread_cond_wait(cond, mutex) }

    /// Waits (lock held) until signalled or `duration` passes.
    package func wait(for duration: Duration) {
        let (seconds, attoseconds) = duration.components
        let nanos = seconds > Int64.max / 1_000_000_000 - 1 ? Int64.max : seconds * 1_000_000_000 + attoseconds / 1_000_000_000
        _ = CHiredis_condWaitFor(cond, mutex, nanos)
    }

    package func signal() { pthread_cond_signal(cond) }
    package func broadcast() { pthread_cond_broadcast(cond) }
}

/// Ignores SIGPIPE for the whole process, once. hiredis writes with `write(2)`, and a write to a
/// socket the server closed would otherwise kill the process (exit 141).
package enum ProcessSignals {
    private static let ignoreSIGPIPE: Void = {
        signal(SIGPIPE, SIG_IGN)
    }()

    package static func ignoreBrokenPipes() { _ = ignoreSIGPIPE }
}
