import Foundation
@_spi(Benchmarks) import JobQ

/// Scenario `drain`: one worker (in this process, its own connections)
/// drains pre-added no-op jobs at concurrency 1, 8 and 32; Redis commands and CPU per job;
/// BullMQ's Python worker draining the same way at concurrency 32.
struct DrainScenario {
    let client: RedisClient
    let reference: RedisBenchmarkTool
    let runs: Int
    let quick: Bool

    func run() async throws -> ScenarioReport {
        var report = ScenarioReport("drain")
        let n = quick ? 20_000 : 100_000
        var rate32: [Double] = []
        var cpu32: [Double] = []
        for concurrency in [1, 8, 32] {
            var rates: [Double] = []
            var cpu: [Double] = []
            var calls: [Double] = []
            var workerCPU: [Double] = []
            var breakdown: [String: Int] = [:]
            let jobs = concurrency == 1 ? n / 5 : n
            for run in 0..<runs {
                let m = try await drainOnce(n: jobs, concurrency: concurrency, run: run)
                report.jobs += jobs
                rates.append(m.rate)
                cpu.append(m.cpu)
                calls.append(m.calls)
                workerCPU.append(m.workerCPU)
                breakdown = m.breakdown
            }
            report.add(
                Figure(
                    "drain \(jobs.formatted()) no-op jobs, 1 worker, concurrency \(concurrency)", rates, unit: "jobs/s",
                    target: concurrency == 32 ? "≥ 20,000 (aim)" : nil, met: concurrency == 32 ? median(rates) >= 20_000 : nil))
            report.add(Figure("Redis CPU per job, concurrency \(concurrency)", cpu, unit: "µs"))
            report.add(Figure("worker CPU per job, concurrency \(concurrency)", workerCPU, unit: "µs"))
            if concurrency == 32 {
                rate32 = rates
                cpu32 = cpu
                let inScript = Double(breakdown.filter { $0.key != "evalsha" }.values.reduce(0, +)) / Double(jobs)
                let evalsha = Double(breakdown["evalsha"] ?? 0) / Double(jobs)
                report.add(
                    Figure(
                        "Redis commands per job inside the scripts (take + finish, c = 32; plus \(f2(evalsha)) EVALSHA)", [inScript], unit: "",
                        target: "≤ 12", met: inScript <= 12.01))
            }
            report.note(
                "concurrency \(concurrency): \(f2(median(calls))) Redis commands per job (\(breakdown.sorted { $0.value > $1.value }.prefix(16).map { "\($0.key) \(f2(Double($0.value) / Double(jobs)))" }.joined(separator: ", ")))"
            )
        }

        // The ceiling: redis-benchmark -c 1 -P 32 running take + finish in one script, no client.
        var ceiling: [Double] = []
        for run in 0..<runs {
            ceiling.append(try await referenceOnce(n: n, run: run, pipeline: 32).rate)
            report.jobs += n
        }
        let ceilingRatio = median(rate32) / median(ceiling)
        report.add(
            Figure(
                "drain rate, concurrency 32", rate32, unit: "jobs/s", reference: "`redis-benchmark -c 1 -P 32` running take + finish in one script",
                referenceValues: ceiling, target: "≥ 0.7×", met: ceilingRatio >= 0.7))

        var bull: [BullMQReference.Measure] = []
        var note = ""
        for run in 0..<runs {
            do {
                bull.append(
                    try await BullMQReference(configuration: client.configuration).measureDrain(
                        quick ? 10_000 : 30_000, queue: "bench-bull-drain-\(run)", concurrency: 32))
                report.jobs += quick ? 10_000 : 30_000
            } catch {
                note = "BullMQ drain skipped: \(error)"
                break
            }
        }
        if bull.isEmpty {
            report.note(note)
        } else {
            let rateRatio = median(rate32) / median(bull.map(\.rate))
            let cpuRatio = median(cpu32) / median(bull.map(\.cpuMicrosPerJob))
            report.add(
                Figure(
                    "drain rate, concurrency 32", rate32, unit: "jobs/s", reference: "BullMQ \(BullMQReference.version()) Python worker, concurrency 32",
                    referenceValues: bull.map(\.rate), target: "≥ 10×", met: rateRatio >= 10))
            report.add(
                Figure(
                    "Redis CPU per job, concurrency 32", cpu32, unit: "µs", reference: "same", referenceValues: bull.map(\.cpuMicrosPerJob),
                    target: "≤ 0.33×", met: cpuRatio <= 1.0 / 3))
            let last = bull.last!
            report.note(
                "BullMQ drain: \(f2(median(bull.map(\.callsPerJob)))) Redis commands per job (\(last.calls.sorted { $0.value > $1.value }.prefix(12).map { "\($0.key) \(f2(Double($0.value) / Double(last.n)))" }.joined(separator: ", ")))"
            )
        }
        return report
    }

    /// Pre-adds `n` jobs, then has `redis-benchmark -c 1 -P <pipeline>` call the reference
    /// take-and-finish script `n` times; checks every job really completed. Calls per second, and
    /// Redis CPU and commands per call (from `INFO` around the `redis-benchmark` run alone).
    func referenceOnce(n: Int, run: Int, pipeline: Int) async throws -> (rate: Double, cpuMicrosPerCall: Double, callsPerCall: Double) {
        let name = "bench-drain-ref-\(run)-\(pipeline)"
        let queue = try JobQueue(name: name, client: client)
        var start = 0
        while start < n {
            let count = min(10_000, n - start)
            _ = try await queue.addBulk((0..<count).map { _ in JobQueue.NewJob(name: "noop", payload: .json("{}")) })
            start += count
        }
        let script = try ReferenceScripts.takeAndFinish(queue: name, client: client)
        guard let sha = try await client.send("SCRIPT", "LOAD", script.source).string else {
            throw BenchError("SCRIPT LOAD of the reference script gave no SHA")
        }
        let before = try await ServerStats.fetch(client)
        let result = try await reference.run(clients: 1, pipeline: pipeline, requests: n, command: ["EVALSHA", sha] + script.arguments)
        let after = try await ServerStats.fetch(client)
        let counts = try await queue.inspector.counts()
        _ = try await queue.inspector.obliterate(force: true)
        guard counts.waiting == 0, counts.active == 0 else {
            throw BenchError("the reference script left \(counts.waiting) waiting and \(counts.active) active jobs of \(n)")
        }
        return (
            result.rps, (after.cpuSeconds - before.cpuSeconds) * 1e6 / Double(n),
            Double(ServerStats.callsBetween(before, after).values.reduce(0, +)) / Double(n)
        )
    }

    struct Measure {
        var rate: Double
        var cpu: Double
        var calls: Double
        var breakdown: [String: Int]
        /// CPU time of this process (the worker, plus a counts poll every 20 ms) per job, µs.
        var workerCPU: Double
    }

    /// - Parameter prepare: runs on the queue before the jobs are added (flow limits).
    func drainOnce(
        n: Int, concurrency: Int, run: Int, label: String = "drain", prepare: (JobQueue) async throws -> Void = { _ in },
        options: (Int) -> JobOptions = { _ in .default }
    ) async throws -> Measure {
        let name = "bench-\(label)-\(concurrency)-\(run)"
        let queue = try JobQueue(name: name, client: client)
        _ = try await queue.preloadScripts()
        try await prepare(queue)
        var start = 0
        while start < n {
            let count = min(10_000, n - start)
            _ = try await queue.addBulk((start..<start + count).map { JobQueue.NewJob(name: "noop", payload: .json("{}"), options: options($0)) })
            start += count
        }
        var handlers = JobHandlers()
        handlers.register(name: "noop") { _, _ in [] }
        var configuration = WorkerConfiguration(queues: [.init(name)], concurrency: concurrency)
        configuration.maxBlockTimeout = .seconds(1)
        let before = try await ServerStats.fetch(client)
        let cpuBefore = processCPUSeconds()
        let t0 = ContinuousClock.now
        let worker = try BenchWorker(server: client.configuration, configuration: configuration, handlers: handlers)
        let deadline = ContinuousClock.now + .seconds(600)
        while ContinuousClock.now < deadline {
            let c = try await queue.inspector.counts()
            if c.waiting + c.active == 0 { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        let elapsed = (ContinuousClock.now - t0).seconds
        let workerCPU = processCPUSeconds() - cpuBefore
        let after = try await ServerStats.fetch(client)
        try await worker.stop()
        _ = try await queue.inspector.obliterate(force: true)
        let calls = ServerStats.callsBetween(before, after)
        let total = Double(calls.values.reduce(0, +))
        return Measure(
            rate: Double(n) / elapsed, cpu: (after.cpuSeconds - before.cpuSeconds) * 1e6 / Double(n), calls: total / Double(n),
            breakdown: calls, workerCPU: workerCPU * 1e6 / Double(n))
    }
}

/// User + system CPU seconds of this process so far.
func processCPUSeconds() -> Double {
    Double(clock()) / Double(CLOCKS_PER_SEC)
}
