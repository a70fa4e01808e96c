import Foundation
import Histogram
import JobQ
import Synchronization

/// Scenario `delayed`: how late delayed jobs start. 10,000 jobs due over 10 s, one
/// worker at concurrency 64 with a no-op handler; lateness = handler start − due time (both from
/// this machine's clock; Redis runs on it too). Reported at `hz 10` and `hz 100` when the bench
/// started its own server (`CONFIG SET hz`), else at the server's setting.
struct DelayedScenario {
    let client: RedisClient
    let runs: Int
    let quick: Bool
    let ownServer: Bool

    func run() async throws -> ScenarioReport {
        var report = ScenarioReport("delayed")
        let count = quick ? 2_000 : 10_000
        let spread = quick ? 4.0 : 10.0
        for hz in ownServer ? [10, 100] : [0] {
            if hz > 0 { _ = try await client.send("CONFIG", "SET", "hz", String(hz)) }
            var p50: [Double] = []
            var p99: [Double] = []
            var max: [Double] = []
            var merged = Histogram<UInt64>.micros()
            for run in 0..<runs {
                let h = try await lateness(count: count, spread: spread, label: "\(hz)-\(run)")
                p50.append(Double(h.valueAtPercentile(50)))
                p99.append(Double(h.valueAtPercentile(99)))
                max.append(Double(h.max))
                merged.add(h)
                report.jobs += count
            }
            let tick = hz > 0 ? 1000.0 / Double(hz) : 100
            let target = 2 * tick
            let at = hz > 0 ? ", hz \(hz)" : ""
            report.add(Figure("delayed lateness p50, \(count.formatted()) jobs due over \(Int(spread)) s\(at)", p50, unit: "ms"))
            report.add(
                Figure(
                    "delayed lateness p99\(at)", p99, unit: "ms", reference: "2 server ticks", referenceValues: p99.map { _ in target },
                    target: "≤ 1×", met: median(p99) <= target))
            report.add(Figure("delayed lateness max\(at)", max, unit: "ms"))
            report.latency("handler start − due time\(at)", merged, unit: "ms")
        }
        if ownServer { _ = try await client.send("CONFIG", "SET", "hz", "10") }
        report.note(
            "delayed: a worker's idle fetcher sleeps on a local timer until the earliest due job and wakes its blocked BZPOPMIN with CLIENT UNBLOCK; a busy one promotes due jobs in every take. Lateness includes the take and the hop to the handler; it is measured in whole milliseconds."
        )
        return report
    }

    private func lateness(count: Int, spread: Double, label: String) async throws -> Histogram<UInt64> {
        let queue = try JobQueue(name: "bench-delayed-\(label)-\(UUID().uuidString.prefix(6))", client: client)
        try await queue.inspector.setRetention(completed: 0)
        let start = Date().addingTimeInterval(3)
        var jobs: [JobQueue.NewJob] = []
        for i in 0..<count {
            let due = start.addingTimeInterval(spread * Double(i) / Double(count))
            let dueMs = Int64((due.timeIntervalSince1970 * 1000).rounded())
            jobs.append(
                JobQueue.NewJob(
                    name: "due", payload: .json(#"{"due":\#(dueMs)}"#),
                    options: JobOptions(runAt: Date(timeIntervalSince1970: Double(dueMs) / 1000))))
        }
        for result in try await queue.addBulk(jobs) { _ = try result.get() }

        struct Due: Decodable { var due: Int64 }
        let samples = Mutex<[Int64]>([])
        var handlers = JobHandlers()
        handlers.register(name: "due") { job, _ in
            let now = Int64((Date().timeIntervalSince1970 * 1000).rounded())
            let due = (try? job.payload.decode(Due.self).due) ?? now
            samples.withLock { $0.append(max(0, now - due)) }
            return []
        }
        let worker = try BenchWorker(
            server: client.configuration, configuration: WorkerConfiguration(queues: [.init(queue.name)], concurrency: 64), handlers: handlers)
        let deadline = ContinuousClock.now + .seconds(spread + 60)
        while ContinuousClock.now < deadline, samples.withLock({ $0.count }) < count {
            try await Task.sleep(for: .milliseconds(100))
        }
        try await worker.stop()
        _ = try await queue.inspector.obliterate(force: true)
        let values = samples.withLock { $0 }
        guard values.count == count else { throw BenchError("only \(values.count) of \(count) delayed jobs ran within \(Int(spread + 60)) s") }
        var histogram = Histogram<UInt64>(numberOfSignificantValueDigits: .three)
        for v in values { _ = histogram.record(UInt64(v)) }
        return histogram
    }
}
