import Foundation
import JobQ
import LocalRedis

/// Scenario `scale`: pre-added no-op jobs drained by 1, 2 and 4 `jobq-worker` processes
/// (release build, `noop` handler, concurrency 32 each). The queue is paused while the workers
/// start, then resumed, so start-up is not timed. Beside the rate: Redis CPU per job, and how
/// busy Redis and the workers kept the machine, which shows where scaling stops.
struct ScaleScenario {
    let client: RedisClient
    let runs: Int
    let quick: Bool

    struct Measure {
        var rate: Double
        var redisCPUPerJob: Double
        /// Redis's CPU over the drain, in cores (1.0 = one core busy all the time).
        var redisCores: Double
        /// All worker processes' CPU over the drain, in cores.
        var workerCores: Double
    }

    func run() async throws -> ScenarioReport {
        var report = ScenarioReport("scale")
        guard let binary = BenchWorker.binary(for: "scale", report: &report) else { return report }
        let n = quick ? 20_000 : 100_000
        let cores = ProcessInfo.processInfo.activeProcessorCount
        var results: [Int: [Measure]] = [:]
        for run in 0..<runs {
            for processes in [1, 2, 4] {
                results[processes, default: []].append(try await once(binary: binary, processes: processes, jobs: n, run: run))
                report.jobs += n
            }
        }
        let one = (results[1] ?? []).map(\.rate)
        for processes in [1, 2, 4] {
            let m = results[processes] ?? []
            report.add(
                Figure(
                    "drain \(n.formatted()) no-op jobs, \(processes) jobq-worker process\(processes == 1 ? "" : "es") × concurrency 32", m.map(\.rate),
                    unit: "jobs/s",
                    reference: processes == 1 ? nil : "1 process", referenceValues: processes == 1 ? nil : one))
            report.add(Figure("\(processes) process\(processes == 1 ? "" : "es"): Redis CPU per job", m.map(\.redisCPUPerJob), unit: "µs"))
            report.add(Figure("\(processes) process\(processes == 1 ? "" : "es"): Redis busy (cores)", m.map(\.redisCores), unit: ""))
            report.add(Figure("\(processes) process\(processes == 1 ? "" : "es"): workers busy (cores, all processes)", m.map(\.workerCores), unit: ""))
        }
        let busiest = (results[4] ?? []).map { $0.redisCores + $0.workerCores }
        report.note(
            "this machine has \(cores) cores, shared by Redis, the workers and the bench. With 4 processes Redis and the workers together kept \(Figure.format(median(busiest))) of them busy; Redis itself runs commands on one thread, so a queue's ceiling is one core of Redis (see `drain`'s reference row), and more worker processes add throughput only while both Redis and the cores have room."
        )
        return report
    }

    private func once(binary: String, processes: Int, jobs n: Int, run: Int) async throws -> Measure {
        let queue = try JobQueue(name: "bench-scale-\(processes)-\(run)-\(UUID().uuidString.prefix(6))", client: client)
        _ = try await queue.inspector.pause()
        var added = 0
        while added < n {
            let count = min(10_000, n - added)
            for r in try await queue.addBulk((0..<count).map { _ in JobQueue.NewJob(name: "noop", payload: .json("{}")) }) { _ = try r.get() }
            added += count
        }
        var environment = ["PATH": "/usr/local/bin:/usr/bin:/bin"]
        environment["JOBQ_REDIS_URL"] =
            ProcessInfo.processInfo.environment["JOBQ_REDIS_URL"].flatMap { $0.isEmpty ? nil : $0 } ?? client.configuration.redactedURL
        var workers: [ChildProcess] = []
        defer { for w in workers { w.signal(SIGKILL) } }
        for i in 0..<processes {
            workers.append(
                try ChildProcess(
                    executable: binary,
                    arguments: [
                        "--queue", queue.name, "--handler", "noop=noop", "--concurrency", "32",
                        "--worker-id", "bench-scale-\(i)", "--log-level", "warning",
                    ],
                    environment: environment))
        }
        let ready = ContinuousClock.now + .seconds(60)
        while try await WorkerInfo.list(client: client, queue: queue.name).count < processes {
            guard ContinuousClock.now < ready else { throw BenchError("scale: \(processes) workers did not all start within 60 s") }
            try await Task.sleep(for: .milliseconds(50))
        }
        let before = try await ServerStats.fetch(client)
        let workerCPUBefore = workers.map { Self.cpuSeconds(of: $0.pid) }.reduce(0, +)
        let t0 = ContinuousClock.now
        _ = try await queue.inspector.resume()
        let deadline = ContinuousClock.now + .seconds(600)
        while true {
            let c = try await queue.inspector.counts()
            if c.waiting + c.active == 0 { break }
            guard ContinuousClock.now < deadline else { throw BenchError("scale: \(processes) workers did not drain \(n) jobs in 600 s") }
            try await Task.sleep(for: .milliseconds(20))
        }
        let elapsed = (ContinuousClock.now - t0).seconds
        let after = try await ServerStats.fetch(client)
        let workerCPU = workers.map { Self.cpuSeconds(of: $0.pid) }.reduce(0, +) - workerCPUBefore
        for w in workers { w.signal(SIGTERM) }
        for w in workers { _ = await w.wait() }
        workers = []
        _ = try await queue.inspector.obliterate(force: true)
        let redisCPU = after.cpuSeconds - before.cpuSeconds
        return Measure(rate: Double(n) / elapsed, redisCPUPerJob: redisCPU * 1e6 / Double(n), redisCores: redisCPU / elapsed, workerCores: workerCPU / elapsed)
    }

    /// utime + stime of a process from `/proc/<pid>/stat`, in seconds.
    static func cpuSeconds(of pid: Int32) -> Double {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = text.lastIndex(of: ")")
        else { return 0 }
        // Fields after "(comm)": state is field 3; utime and stime are fields 14 and 15.
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}
