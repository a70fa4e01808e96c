#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A mutex with a condition variable (monotonic clock), for the threads that own Redis connections.
///
/// - Important: only for code running on our own threads. Never wait on it from Swift's
///   cooperative pool; `lock`/`unlock` around short critical sections are fine anywhere.
final class ConditionLock: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let cond = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    init() {
        pthread_mutex_init(mutex, nil)
        var attr = pthread_condattr_t()
        pthread_condattr_init(&attr)
        #if os(Linux)
            pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)
        #endif
        pthread_cond_init(cond, &attr)
        pthread_condattr_destroy(&attr)
    }

    deinit {
        pthread_cond_destroy(cond)
        pthread_mutex_destroy(mutex)
        cond.deallocate()
        mutex.deallocate()
    }

    func lock() { pthread_mutex_lock(mutex) }
    func unlock() { pthread_mutex_unlock(mutex) }

    func withLock<T>(_ body: () throws -> T) rethrows -> T {
        lock()
        defer { unlock() }
        return try body()
    }

    /// Waits (lock held) until signalled.
    func wait() { pthread_cond_wait(cond, mutex) }

    /// Waits (lock held) until signalled or `duration` passes.
    func wait(for duration: Duration) {
        #if os(Linux)
            var now = timespec()
            clock_gettime(CLOCK_MONOTONIC, &now)
            let (s, atto) = duration.components
            var nanos = Int(now.tv_nsec) + Int(atto / 1_000_000_000)
            var secs = Int(now.tv_sec) + Int(s) + nanos / 1_000_000_000
            nanos %= 1_000_000_000
            if secs < 0 { secs = 0 }
            var deadline = timespec(tv_sec: secs, tv_nsec: nanos)
            pthread_cond_timedwait(cond, mutex, &deadline)
        #else
            var rel = timespec(tv_sec: Int(duration.components.seconds), tv_nsec: Int(duration.components.attoseconds / 1_000_000_000))
            pthread_cond_timedwait_relative_np(cond, mutex, &rel)
        #endif
    }

    func signal() { pthread_cond_signal(cond) }
    func broadcast() { pthread_cond_broadcast(cond) }
}

/// Ignores SIGPIPE for the whole process, once. hiredis writes with `write(2)`, and a write to a
/// socket the server closed would otherwise kill the process (exit 141).
enum ProcessSignals {
    private static let ignoreSIGPIPE: Void = {
        signal(SIGPIPE, SIG_IGN)
    }()

    static func ignoreBrokenPipes() { _ = ignoreSIGPIPE }
}
