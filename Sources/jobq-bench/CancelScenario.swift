import Foundation
import Histogram
@_spi(Benchmarks) import JobQ
import Synchronization

/// Scenario `cancel`: the time from just before `cancel()` to the running
/// handler's token firing, against a bare PUBLISH → subscriber on the same server; and the
/// missed-message path (the flag alone, found by the lease renewal).
struct CancelScenario {
    let client: RedisClient
    let runs: Int
    let quick: Bool

    /// Token fire times by job id, and waiters for them.
    final class Fired: Sendable {
        private let state = Mutex<
            (times: [String: ContinuousClock.Instant], waiters: [String: CheckedContinuation<ContinuousClock.Instant, Never>], running: Set<String>)
        >(([:], [:], []))

        func started(_ id: String) { state.withLock { _ = $0.running.insert(id) } }

        func fire(_ id: String) {
            let now = ContinuousClock.now
            let waiter = state.withLock { s -> CheckedContinuation<ContinuousClock.Instant, Never>? in
                s.running.remove(id)
                if let w = s.waiters.removeValue(forKey: id) { return w }
                s.times[id] = now
                return nil
            }
            waiter?.resume(returning: now)
        }

        func wait(_ id: String) async -> ContinuousClock.Instant {
            await withCheckedContinuation { c in
                let done = state.withLock { s -> ContinuousClock.Instant? in
                    if let t = s.times.removeValue(forKey: id) { return t }
                    s.waiters[id] = c
                    return nil
                }
                if let done { c.resume(returning: done) }
            }
        }

        var running: Set<String> { state.withLock { $0.running } }
    }

    func run() async throws -> ScenarioReport {
        var report = ScenarioReport("cancel")
        let count = quick ? 300 : 1000
        var ourP50: [Double] = []
        var ourP99: [Double] = []
        var refP50: [Double] = []
        var refP99: [Double] = []
        var missed: [Double] = []
        var ours = Histogram<UInt64>.micros()
        var bare = Histogram<UInt64>.micros()
        for run in 0..<runs {
            let reference = try await publishLatency(count: count)
            refP50.append(Double(reference.valueAtPercentile(50)))
            refP99.append(Double(reference.valueAtPercentile(99)))
            bare.add(reference)
            let m = try await cancelLatency(count: count, run: run)
            ourP50.append(Double(m.histogram.valueAtPercentile(50)))
            ourP99.append(Double(m.histogram.valueAtPercentile(99)))
            ours.add(m.histogram)
            missed.append(m.missedMax)
            report.jobs += count + 76
        }
        let r50 = median(ourP50) / median(refP50)
        let r99 = median(ourP99) / median(refP99)
        report.add(
            Figure(
                "cancel → token fired, p50 (\(count) running jobs per run)", ourP50, unit: "µs", reference: "bare PUBLISH → subscriber, p50",
                referenceValues: refP50, target: "≤ 3×", met: r50 <= 3))
        report.add(
            Figure(
                "cancel → token fired, p99", ourP99, unit: "µs", reference: "bare PUBLISH → subscriber, p99", referenceValues: refP99, target: "≤ 5×",
                met: r99 <= 5))
        // The flag is found by the next renewal, at most one interval (L/3 = 1 s) later; the
        // measured time also holds the HSET that sets the flag and the renewal call itself, so
        // the target allows 2 % over the interval.
        report.add(
            Figure(
                "missed message (flag only) → token fired, worst of 10, lease 3 s", missed, unit: "ms", reference: "one renewal interval (L/3)",
                referenceValues: missed.map { _ in 1000 }, target: "≤ 1× (+2 %)", met: median(missed) <= 1020))
        report.latency("cancel() called → handler's token fired", ours)
        report.latency("reference: PUBLISH sent → subscriber got it", bare)
        return report
    }

    /// PUBLISH → the message read by a subscriber on another connection, one at a time.
    func publishLatency(count: Int) async throws -> Histogram<UInt64> {
        let channel = "bench:cancel-ref:\(UUID().uuidString.prefix(8))"
        return try await client.withSubscription(to: [channel]) { events in
            var iterator = events.makeAsyncIterator()
            var histogram = Histogram<UInt64>(numberOfSignificantValueDigits: .three)
            for i in 0..<(count + 50) {
                let t0 = ContinuousClock.now
                _ = try await client.send("PUBLISH", channel, "x")
                while let event = await iterator.next() {
                    if case .message = event { break }
                }
                if i >= 50 { histogram.record(since: t0) }
            }
            return histogram
        }
    }

    private func cancelLatency(count: Int, run: Int) async throws -> (histogram: Histogram<UInt64>, missedMax: Double) {
        let queue = try JobQueue(name: "bench-cancel-\(run)-\(UUID().uuidString.prefix(6))", client: client)
        try await queue.inspector.setRetention(cancelled: 0)
        let fired = Fired()
        var handlers = JobHandlers()
        handlers.register(name: "wait") { job, context in
            context.onCancel { _ in fired.fire(job.id) }
            fired.started(job.id)
            _ = await context.waitForCancellation()
            return []
        }
        var configuration = WorkerConfiguration(queues: [.init(queue.name)], concurrency: 16)
        configuration.lease = .seconds(3)
        let worker = try BenchWorker(server: client.configuration, configuration: configuration, handlers: handlers)
        defer { Task { try? await worker.stop() } }
        _ = try await queue.addBulk((0..<16).map { _ in JobQueue.NewJob(name: "wait", payload: .json("{}")) })
        var histogram = Histogram<UInt64>(numberOfSignificantValueDigits: .three)
        for i in 0..<(count + 50) {
            var id: String?
            for _ in 0..<5000 {
                id = fired.running.first
                if id != nil { break }
                try await Task.sleep(for: .milliseconds(1))
            }
            guard let id else { throw BenchError("no running job to cancel") }
            let t0 = ContinuousClock.now
            _ = try await queue.cancel(id)
            let t1 = await fired.wait(id)
            if i >= 50 { _ = histogram.record(UInt64(max(1, (t1 - t0).nanoseconds / 1000))) }
            _ = try await queue.add(name: "wait", payload: .json("{}"))
        }
        // The missed-message path: the flag alone, as if the message were lost.
        var worst = 0.0
        for _ in 0..<10 {
            var id: String?
            for _ in 0..<5000 {
                id = fired.running.first
                if id != nil { break }
                try await Task.sleep(for: .milliseconds(1))
            }
            guard let id else { throw BenchError("no running job to flag") }
            let t0 = ContinuousClock.now
            _ = try await client.send(
                "HSET", try ReferenceScripts.jobKey(queue: queue.name, id: id), JobField.cancelRequested.rawValue, JobField.flagSet,
                JobField.cancelReason.rawValue, "bench")
            let t1 = await fired.wait(id)
            worst = max(worst, (t1 - t0).seconds * 1000)
            _ = try await queue.add(name: "wait", payload: .json("{}"))
        }
        _ = try await queue.inspector.obliterate(force: true)
        return (histogram, worst)
    }
}
