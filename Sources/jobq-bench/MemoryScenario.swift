import Foundation
import JobQ
import LocalRedis

/// Scenario `memory`: Redis bytes per waiting job (20-byte payload) and per retained
/// (completed) record; `jobq-worker` RSS idle and while draining at concurrency 16.
struct MemoryScenario {
    let client: RedisClient
    let runs: Int
    let quick: Bool

    func run() async throws -> ScenarioReport {
        var report = ScenarioReport("memory")
        let n = quick ? 20_000 : 100_000
        var waiting: [Double] = []
        var retained: [Double] = []
        var idle: [Double] = []
        var busy: [Double] = []
        var idleCPU: [Double] = []
        let binary = BenchWorker.binary(for: "worker RSS", report: &report)
        for run in 0..<runs {
            let m = try await redisBytes(n: n, run: run)
            waiting.append(m.waiting)
            retained.append(m.retained)
            report.jobs += n
            if let binary {
                let r = try await workerRSS(binary: binary, run: run, jobs: quick ? 2_000 : 10_000)
                idle.append(r.idle)
                busy.append(r.busy)
                idleCPU.append(r.idleCPU)
                report.jobs += quick ? 2_000 : 10_000
            }
        }
        report.add(
            Figure(
                "Redis memory per waiting job (20-byte payload), \(n.formatted()) jobs, `INFO memory` delta / jobs", waiting, unit: "B",
                target: "≤ 400 B", met: median(waiting) <= 400))
        report.add(Figure("Redis memory per retained completed record", retained, unit: "B"))
        if !idle.isEmpty {
            // The target is in MB (10^6 bytes); RSS is read in KiB.
            report.add(
                Figure(
                    "jobq-worker RSS, idle, concurrency 16 (this build)", idle.map { $0 * 1.048576 }, unit: "MB", target: "≤ 30 MB",
                    met: median(idle) * 1.048576 <= 30))
            report.add(
                Figure(
                    "jobq-worker RSS, peak while draining, concurrency 16", busy.map { $0 * 1.048576 }, unit: "MB", target: "≤ 30 MB",
                    met: median(busy) * 1.048576 <= 30))
            report.add(
                Figure(
                    "jobq-worker CPU while idle (\(quick ? 3 : 10) s, `/proc/<pid>/stat`, 10 ms ticks)", idleCPU, unit: "%", target: "< 1 %",
                    met: median(idleCPU) < 1))
        }
        return report
    }

    private func redisBytes(n: Int, run: Int) async throws -> (waiting: Double, retained: Double) {
        let queue = try JobQueue(name: "bench-memory-\(run)-\(UUID().uuidString.prefix(6))", client: client)
        try await queue.inspector.setRetention(completed: n)
        let before = try await ServerStats.fetch(client).usedMemory
        var added = 0
        while added < n {
            let count = min(10_000, n - added)
            for r in try await queue.addBulk((0..<count).map { _ in JobQueue.NewJob(name: "noop", payload: EnqueueScenario.payload) }) { _ = try r.get() }
            added += count
        }
        let afterAdd = try await ServerStats.fetch(client).usedMemory
        // Run them all (a no-op worker in this process): each becomes a retained completed record.
        var handlers = JobHandlers()
        handlers.register(name: "noop") { _, _ in [] }
        let worker = try BenchWorker(
            server: client.configuration, configuration: WorkerConfiguration(queues: [.init(queue.name)], concurrency: 32), handlers: handlers)
        let deadline = ContinuousClock.now + .seconds(600)
        while ContinuousClock.now < deadline, try await queue.inspector.counts().completed < n {
            try await Task.sleep(for: .milliseconds(50))
        }
        try await worker.stop()
        let afterRun = try await ServerStats.fetch(client).usedMemory
        _ = try await queue.inspector.obliterate(force: true)
        return (Double(afterAdd - before) / Double(n), Double(afterRun - before) / Double(n))
    }

    private func workerRSS(binary: String, run: Int, jobs: Int) async throws -> (idle: Double, busy: Double, idleCPU: Double) {
        let queue = try JobQueue(name: "bench-rss-\(run)-\(UUID().uuidString.prefix(6))", client: client)
        var environment = ["PATH": "/usr/local/bin:/usr/bin:/bin"]
        environment["JOBQ_REDIS_URL"] =
            ProcessInfo.processInfo.environment["JOBQ_REDIS_URL"].flatMap { $0.isEmpty ? nil : $0 } ?? client.configuration.redactedURL
        // glibc malloc tuning, passed through to compare (e.g. MALLOC_ARENA_MAX=2).
        for key in ["MALLOC_ARENA_MAX", "MALLOC_TRIM_THRESHOLD_"] { environment[key] = ProcessInfo.processInfo.environment[key] }
        let process = try ChildProcess(
            executable: binary,
            arguments: [
                "--queue", queue.name, "--handler", "work=sleep:1ms..5ms",
                "--concurrency", "16", "--log-level", "warning",
            ],
            environment: environment)
        defer { process.signal(SIGKILL) }
        let started = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < started, try await WorkerInfo.list(client: client, queue: queue.name).isEmpty {
            try await Task.sleep(for: .milliseconds(50))
        }
        try await Task.sleep(for: .seconds(2))
        let idle = rssMiB(process.pid)
        // Idle CPU: utime + stime over a quiet spell (it waits by blocking on Redis, no polling).
        let quiet = quick ? 3.0 : 10.0
        let cpu0 = ScaleScenario.cpuSeconds(of: process.pid)
        try await Task.sleep(for: .seconds(quiet))
        let idleCPU = (ScaleScenario.cpuSeconds(of: process.pid) - cpu0) / quiet * 100
        for r in try await queue.addBulk((0..<jobs).map { _ in JobQueue.NewJob(name: "work", payload: EnqueueScenario.payload) }) { _ = try r.get() }
        var peak = idle
        let deadline = ContinuousClock.now + .seconds(300)
        while ContinuousClock.now < deadline {
            peak = max(peak, rssMiB(process.pid))
            let c = try await queue.inspector.counts()
            if c.waiting + c.active == 0 { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        process.signal(SIGTERM)
        _ = await process.wait()
        _ = try await queue.inspector.obliterate(force: true)
        return (idle, peak, idleCPU)
    }

    private func rssMiB(_ pid: Int32) -> Double {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
            let kib = Double(line.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first ?? "")
        else { return 0 }
        return kib / 1024
    }
}
