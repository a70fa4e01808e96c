import Foundation
import JobQ
import LocalRedis
import Synchronization

/// Scenario `recovery`: `kill -9` of a `jobq-worker` process holding 100 running jobs,
/// with default settings (lease 10 s): how long until all 100 are back in waiting (their `stalled`
/// events, stamped by Redis) and running on a second worker that was idle all along.
struct RecoveryScenario {
    let client: RedisClient
    let runs: Int
    let quick: Bool

    func run() async throws -> ScenarioReport {
        var report = ScenarioReport("recovery")
        guard let binary = BenchWorker.binary(for: "recovery", report: &report) else { return report }
        var waiting: [Double] = []
        var elsewhere: [Double] = []
        for run in 0..<runs {
            let m = try await once(binary: binary, run: run, jobs: quick ? 20 : 100)
            waiting.append(m.waiting)
            elsewhere.append(m.elsewhere)
            report.jobs += quick ? 20 : 100
        }
        let n = quick ? 20 : 100
        report.add(
            Figure(
                "kill -9 of a worker holding \(n) jobs → all back in waiting (defaults: lease 10 s)", waiting, unit: "s",
                reference: "lease + reaper interval (L + L/4)", referenceValues: waiting.map { _ in 12.5 }, target: "≤ 1×", met: median(waiting) <= 12.5))
        report.add(Figure("same → all running on the other worker", elsewhere, unit: "s"))
        report.note(
            "recovery: the reaper runs every L/4 on each live worker, under a Redis lock, and requeues jobs whose lease deadline passed; the idle worker's fetchers are woken by the marker the requeue sets."
        )
        return report
    }

    private func once(binary: String, run: Int, jobs n: Int) async throws -> (waiting: Double, elsewhere: Double) {
        let queue = try JobQueue(name: "bench-recovery-\(run)-\(UUID().uuidString.prefix(6))", client: client)
        var environment = ["PATH": "/usr/local/bin:/usr/bin:/bin"]
        environment["JOBQ_REDIS_URL"] =
            ProcessInfo.processInfo.environment["JOBQ_REDIS_URL"].flatMap { $0.isEmpty ? nil : $0 } ?? client.configuration.redactedURL
        func start(_ id: String) throws -> (ChildProcess, String) {
            let log = FileManager.default.temporaryDirectory.appendingPathComponent("jobq-bench-\(id)-\(UUID().uuidString.prefix(6)).log").path
            let process = try ChildProcess(
                executable: binary,
                arguments: [
                    "--queue", queue.name, "--handler", "long=sleep:10m",
                    "--concurrency", String(n), "--worker-id", id, "--log-level", "warning",
                ],
                environment: environment, outputPath: log)
            return (process, log)
        }
        func until(_ seconds: Double, _ what: String, _ condition: () async throws -> Bool) async throws {
            let deadline = ContinuousClock.now + .seconds(seconds)
            while ContinuousClock.now < deadline {
                if try await condition() { return }
                try await Task.sleep(for: .milliseconds(20))
            }
            throw BenchError("recovery: timed out waiting for \(what)")
        }

        // The first worker takes all the jobs; the second starts once it holds them, and idles.
        let first = try start("bench-rec-a\(run)")
        defer {
            first.0.signal(SIGKILL)
            try? FileManager.default.removeItem(atPath: first.1)
        }
        try await until(30, "the first worker's heartbeat") { try await WorkerInfo.list(client: client, queue: queue.name).count == 1 }
        for result in try await queue.addBulk((0..<n).map { _ in JobQueue.NewJob(name: "long", payload: .json("{}")) }) { _ = try result.get() }
        try await until(60, "\(n) jobs running on the first worker") { try await queue.inspector.counts().active == n }
        let second = try start("bench-rec-b\(run)")
        defer {
            second.0.signal(SIGKILL)
            try? FileManager.default.removeItem(atPath: second.1)
        }
        try await until(30, "the second worker's heartbeat") { try await WorkerInfo.list(client: client, queue: queue.name).count == 2 }

        let stalled = Mutex<[Date]>([])
        let reader = Task {
            for try await element in queue.events(from: .end) {
                if case .event(let e) = element, e.kind == .stalled { stalled.withLock { $0.append(e.time) } }
            }
        }
        defer { reader.cancel() }
        try await Task.sleep(for: .milliseconds(200))  // the reader's XREAD is in place
        let killedAt = Date()
        let t0 = ContinuousClock.now
        first.0.signal(SIGKILL)
        var elsewhere = 0.0
        try await until(60, "\(n) jobs running on the second worker") {
            let active = try await queue.inspector.jobs(state: .active, limit: n)
            if active.count == n, active.allSatisfy({ $0.workerID == "bench-rec-b\(run)" }) {
                elsewhere = (ContinuousClock.now - t0).seconds
                return true
            }
            return false
        }
        try await until(10, "\(n) stalled events") { stalled.withLock { $0.count } >= n }
        let lastBack = stalled.withLock { $0.max() } ?? killedAt
        _ = try await queue.inspector.obliterate(force: true)
        return (lastBack.timeIntervalSince(killedAt), elsewhere)
    }
}
