import Foundation
import Histogram
import JobQ
import Synchronization

/// Scenario `steady`: producers and a worker at once. First the maximum rate: 4
/// producers add as fast as they can while a worker (concurrency 32, no-op handler) runs them,
/// and the completion rate is the maximum. Then producers offer 50 % and 80 % of it on a fixed
/// schedule for a window, and each job's latency is recorded from its `add` call to its handler
/// starting (the payload carries the send time) and to its `completed` event as a `QueueEvents`
/// reader in the producer's process sees it. All in this process, as a service that embeds both
/// would; the worker has its own connections.
struct SteadyScenario {
    let client: RedisClient
    let runs: Int
    let quick: Bool

    static let producers = 4

    func run() async throws -> ScenarioReport {
        var report = ScenarioReport("steady")
        let window = quick ? 6.0 : 30.0
        let saturation = quick ? 3.0 : 10.0
        var maxRates: [Double] = []
        var achieved: [Double: [Double]] = [:]
        var started: [Double: Histogram<UInt64>] = [:]
        var completed: [Double: Histogram<UInt64>] = [:]
        var startP99: [Double: [Double]] = [:]
        var completedP99: [Double: [Double]] = [:]
        var backlog: [Double: [Double]] = [:]
        var gaps = 0
        for run in 0..<runs {
            let maxRate = try await measure(rate: nil, seconds: saturation, label: "max-\(run)")
            maxRates.append(maxRate.completedRate)
            report.jobs += maxRate.added
            for fraction in [0.5, 0.8] {
                let m = try await measure(rate: maxRate.completedRate * fraction, seconds: window, label: "\(Int(fraction * 100))-\(run)")
                report.jobs += m.added
                achieved[fraction, default: []].append(m.addedRate)
                started[fraction, default: .micros()].add(m.started)
                completed[fraction, default: .micros()].add(m.completed)
                startP99[fraction, default: []].append(Double(m.started.valueAtPercentile(99)))
                completedP99[fraction, default: []].append(Double(m.completed.valueAtPercentile(99)))
                backlog[fraction, default: []].append(Double(m.maxBacklog))
                gaps += m.gaps
            }
        }
        report.add(Figure("maximum rate with the producers running (4 producers, 1 worker at concurrency 32, \(Int(saturation)) s)", maxRates, unit: "jobs/s"))
        for fraction in [0.5, 0.8] {
            let pct = "\(Int(fraction * 100)) %"
            report.add(Figure("offered \(pct) of the maximum for \(Int(window)) s: achieved add rate", achieved[fraction] ?? [], unit: "jobs/s"))
            report.add(Figure("offered \(pct): add → handler start, p99", startP99[fraction] ?? [], unit: "µs"))
            report.add(Figure("offered \(pct): add → completed event, p99", completedP99[fraction] ?? [], unit: "µs"))
            report.add(Figure("offered \(pct): most jobs waiting at once (sampled every 100 ms)", backlog[fraction] ?? [], unit: "jobs"))
            if let h = started[fraction] { report.latency("offered \(pct): add called → handler started", h) }
            if let h = completed[fraction] { report.latency("offered \(pct): add called → `completed` event read", h) }
        }
        report.note(
            "steady: producers send on a fixed schedule (job k of a producer at t0 + k / rate); a producer that falls behind sends at once, so the achieved add rate shows when it could not keep up. Latency counts from the `add` call, not from the schedule."
        )
        if gaps > 0 { report.note("the events reader fell behind the capped stream \(gaps) times; those jobs have no add → completed sample") }
        return report
    }

    struct Measure {
        var added: Int
        var addedRate: Double
        var completedRate: Double
        var started: Histogram<UInt64>
        var completed: Histogram<UInt64>
        var maxBacklog: Int
        var gaps: Int
    }

    /// Start times of adds and arrival times of `completed` events, matched by job id whichever
    /// comes first (a job can complete before its add's reply is read).
    final class Tracker: Sendable {
        private struct State {
            var added: [String: ContinuousClock.Instant] = [:]
            var completedFirst: [String: ContinuousClock.Instant] = [:]
            var completed = Histogram<UInt64>.micros()
            var started = Histogram<UInt64>.micros()
            var completions = 0
        }
        private let state = Mutex(State())

        func added(_ id: String, at t0: ContinuousClock.Instant) {
            state.withLock { s in
                if let done = s.completedFirst.removeValue(forKey: id) {
                    _ = s.completed.record(UInt64(max(1, (done - t0).nanoseconds / 1000)))
                } else {
                    s.added[id] = t0
                }
            }
        }

        func completed(_ id: String) {
            let now = ContinuousClock.now
            state.withLock { s in
                if let t0 = s.added.removeValue(forKey: id) {
                    _ = s.completed.record(UInt64(max(1, (now - t0).nanoseconds / 1000)))
                } else {
                    s.completedFirst[id] = now
                }
            }
        }

        func started(sentAt uptime: UInt64) {
            let now = DispatchTime.now().uptimeNanoseconds
            state.withLock { s in
                s.completions += 1
                _ = s.started.record(max(1, (now &- uptime) / 1000))
            }
        }

        var handled: Int { state.withLock { $0.completions } }
        var histograms: (started: Histogram<UInt64>, completed: Histogram<UInt64>) { state.withLock { ($0.started, $0.completed) } }
    }

    /// One window: `rate` nil means as fast as the producers can.
    private func measure(rate: Double?, seconds: Double, label: String) async throws -> Measure {
        let queue = try JobQueue(name: "bench-steady-\(label)-\(UUID().uuidString.prefix(6))", client: client)
        _ = try await queue.preloadScripts()
        let tracker = Tracker()
        var handlers = JobHandlers()
        handlers.register(name: "timed") { job, _ in
            var sent: UInt64 = 0
            for (i, b) in job.payload.bytes.prefix(8).enumerated() { sent |= UInt64(b) << (8 * UInt64(i)) }
            tracker.started(sentAt: sent)
            return []
        }
        var configuration = WorkerConfiguration(queues: [.init(queue.name)], concurrency: 32)
        configuration.maxBlockTimeout = .seconds(1)
        let worker = try BenchWorker(server: client.configuration, configuration: configuration, handlers: handlers)

        // The completed events, read as a user's QueueEvents would.
        let gaps = Atomic<Int>(0)
        let events = queue.events(from: .end)
        let reader = Task {
            for try await element in events {
                switch element {
                case .event(let e) where e.kind == .completed: tracker.completed(e.jobID)
                case .gap: gaps.add(1, ordering: .relaxed)
                default: break
                }
            }
        }
        try await Task.sleep(for: .milliseconds(200))  // the reader's XREAD is in place

        let perProducer = rate.map { $0 / Double(Self.producers) }
        let t0 = ContinuousClock.now
        let end = t0 + .seconds(seconds)
        // The backlog, sampled while the producers run.
        let sampler = Task {
            var most = 0
            while ContinuousClock.now < end {
                try await Task.sleep(for: .milliseconds(100))
                most = max(most, try await queue.inspector.counts().waiting)
            }
            return most
        }
        let added = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<Self.producers {
                group.addTask {
                    var k = 0
                    while true {
                        let due = perProducer.map { t0 + .nanoseconds(Int64(Double(k) / $0 * 1e9)) } ?? ContinuousClock.now
                        if due >= end || ContinuousClock.now >= end { break }
                        if due > ContinuousClock.now { try await Task.sleep(until: due, tolerance: .microseconds(50), clock: .continuous) }
                        let sent = ContinuousClock.now
                        var stamp = DispatchTime.now().uptimeNanoseconds
                        let bytes = withUnsafeBytes(of: &stamp) { Array($0) }
                        let result = try await queue.add(name: "timed", payload: .bytes(bytes))
                        tracker.added(result.id, at: sent)
                        k += 1
                    }
                    return k
                }
            }
            return try await group.reduce(0, +)
        }
        let maxBacklog = try await sampler.value
        let handledAtEnd = tracker.handled
        let elapsed = (ContinuousClock.now - t0).seconds
        // Let the rest finish (bounded), then stop everything.
        let deadline = ContinuousClock.now + .seconds(120)
        while ContinuousClock.now < deadline, tracker.handled < added {
            try await Task.sleep(for: .milliseconds(20))
        }
        try await Task.sleep(for: .milliseconds(300))  // the last completed events
        reader.cancel()
        try await worker.stop()
        _ = try await queue.inspector.obliterate(force: true)
        let histograms = tracker.histograms
        return Measure(
            added: added, addedRate: Double(added) / seconds, completedRate: Double(handledAtEnd) / elapsed,
            started: histograms.started, completed: histograms.completed, maxBacklog: maxBacklog, gaps: gaps.load(ordering: .relaxed))
    }
}
