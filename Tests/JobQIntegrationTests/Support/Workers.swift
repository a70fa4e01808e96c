import Foundation
import Logging
import Synchronization
import Testing

@testable import JobQ
@testable import JobQRedis

/// Runs a worker on `queue` for the duration of `body`, then shuts it down and waits for it.
@discardableResult
func withWorker<T: Sendable>(
    _ queue: JobQueue, concurrency: Int = 4, lease: Duration = .seconds(2), grace: Duration = .seconds(5),
    configure: (inout WorkerConfiguration) -> Void = { _ in }, logger: Logger? = nil,
    handlers: JobHandlers, _ body: (Worker) async throws -> T
) async throws -> T {
    var configuration = WorkerConfiguration(queues: [.init(queue.name)], concurrency: concurrency)
    configuration.lease = lease
    configuration.shutdownGrace = grace
    configuration.maxBlockTimeout = .seconds(1)
    configure(&configuration)
    let worker = try Worker(client: queue.client, configuration: configuration, handlers: handlers, logger: logger)
    let running = Task { try await worker.run() }
    do {
        let result = try await body(worker)
        worker.shutdown()
        try await running.value
        return result
    } catch {
        worker.shutdown()
        _ = try? await running.value
        throw error
    }
}

/// Waits until `condition` holds, checking every 20 ms, for at most `seconds` (a deadline that
/// catches a hang, not slowness). For what the queue's events show (a job completed, failed,
/// was cancelled) use `JobQueue.expectEvents` instead; this is for state nothing announces (a
/// server's role, a log line, a metrics page).
func eventually(_ seconds: Double = 20, _ what: String, _ condition: @escaping @Sendable () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + .seconds(seconds)
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(20))
    }
    throw TimedOut(what: what)
}

/// Counters shared with handlers.
final class Probe: Sendable {
    private let state = Mutex<(running: Int, maxRunning: Int, runs: [String: [ContinuousClock.Instant]])>((0, 0, [:]))
    func enter(_ id: String) {
        state.withLock { s in
            s.running += 1
            s.maxRunning = max(s.maxRunning, s.running)
            s.runs[id, default: []].append(.now)
        }
    }
    func leave() { state.withLock { $0.running -= 1 } }
    var maxRunning: Int { state.withLock { $0.maxRunning } }
    var running: Int { state.withLock { $0.running } }
    func runs(_ id: String) -> [ContinuousClock.Instant] { state.withLock { $0.runs[id] ?? [] } }
    var totalRuns: Int { state.withLock { $0.runs.values.reduce(0) { $0 + $1.count } } }
    /// How many different jobs ran.
    var jobs: Int { state.withLock { $0.runs.count } }
    /// The ids of jobs that ran more than once.
    var repeated: [String] { state.withLock { s in s.runs.filter { $0.value.count > 1 }.map(\.key).sorted() } }
}

/// A gate a handler waits on, ignoring task cancellation (a handler that does not cooperate).
final class Latch: Sendable {
    private let state = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))
    func wait() async {
        await withCheckedContinuation { c in
            let open = state.withLock { s -> Bool in
                if s.open { return true }
                s.waiters.append(c)
                return false
            }
            if open { c.resume() }
        }
    }
    func open() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.open = true
            defer { s.waiters = [] }
            return s.waiters
        }
        for w in waiters { w.resume() }
    }
}
