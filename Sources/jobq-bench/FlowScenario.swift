import Foundation
@_spi(Benchmarks) import JobQ

/// Scenario `flow`: what flow limits cost and how exactly they hold. The drain at concurrency 32
/// of a queue with limits set too high to bind, against the same queue with none, alternating in
/// the same run; a rate limit's accuracy over 10 s; the time a worker takes to fill a
/// concurrency cap.
struct FlowScenario {
    let client: RedisClient
    let runs: Int
    let quick: Bool

    func run() async throws -> ScenarioReport {
        var report = ScenarioReport("flow")
        let n = quick ? 20_000 : 100_000
        var plain: [Double] = []
        var limited: [Double] = []
        var plainCPU: [Double] = []
        var limitedCPU: [Double] = []
        var calls: (plain: [String: Int], limited: [String: Int]) = ([:], [:])
        for run in 0..<runs {
            // Alternating, so the machine's drift hits both alike.
            let p = try await drain(n: n, limits: false, run: run)
            let l = try await drain(n: n, limits: true, run: run)
            (plain, plainCPU, limited, limitedCPU) = (plain + [p.rate], plainCPU + [p.cpu], limited + [l.rate], limitedCPU + [l.cpu])
            calls = (p.calls, l.calls)
            report.jobs += 2 * n
        }
        let ratio = median(limited) / median(plain)
        report.add(
            Figure(
                "drain \(n.formatted()) no-op jobs, c = 32, limits set but not binding (rate 100,000/1s, cap 10,000, max waiting 10⁹)", limited,
                unit: "jobs/s", reference: "the same queue without limits, alternating runs", referenceValues: plain, target: "≥ 0.9×",
                met: ratio >= 0.9))
        report.add(
            Figure(
                "Redis CPU per job of that drain, limits set but not binding", limitedCPU, unit: "µs", reference: "without limits", referenceValues: plainCPU))
        func perJob(_ c: [String: Int]) -> String {
            let total = Double(c.values.reduce(0, +)) / Double(n)
            return f2(total) + " ("
                + c.sorted { $0.value > $1.value }.prefix(14).map { "\($0.key) \(f2(Double($0.value) / Double(n)))" }.joined(separator: ", ") + ")"
        }
        report.note("Redis commands per job, no limits: \(perJob(calls.plain)); limits set but not binding: \(perJob(calls.limited))")

        let (windows, perSecond, used, starts) = try await rateAccuracy(limit: 500, seconds: quick ? 5 : 10)
        report.jobs += starts
        report.add(
            Figure(
                "rate 500/1s: starts in the busiest 1 s window (sliding, at every start)", [Double(windows.max() ?? 0)], unit: "", target: "≤ 500",
                met: (windows.max() ?? 0) <= 500))
        let deviations = perSecond.map { Double(abs(500 - $0)) / 500 * 100 }.sorted()
        report.add(
            Figure(
                "rate 500/1s: p99 deviation from the limit of the starts in consecutive 1 s windows (from the first start)",
                [deviations.isEmpty ? 0 : deviations[min(deviations.count - 1, Int(Double(deviations.count) * 0.99))]], unit: "%"))
        report.add(Figure("rate 500/1s: starts over the run ÷ (limit × seconds)", [used * 100], unit: "%", target: "≥ 90 %", met: used >= 0.9))

        var fill: [Double] = []
        var most = 0
        for run in 0..<runs {
            let (ms, peak) = try await timeToCap(cap: 20, run: run)
            fill.append(ms)
            most = max(most, peak)
            report.jobs += 40
        }
        report.add(Figure("time for 1 worker (concurrency 32) to fill a cap of 20, from its start", fill, unit: "ms"))
        report.add(Figure("most active jobs seen under the cap of 20 (sampled every ms)", [Double(most)], unit: "", target: "≤ 20", met: most <= 20))
        return report
    }

    private func queue(_ name: String) async throws -> JobQueue {
        let queue = try JobQueue(name: name, client: client)
        _ = try? await queue.inspector.obliterate(force: true)
        _ = try await queue.preloadScripts()
        return queue
    }

    private func addNoops(_ queue: JobQueue, _ n: Int, name: String = "noop", payload: String = "{}") async throws {
        var start = 0
        while start < n {
            let count = min(10_000, n - start)
            _ = try await queue.addBulk((0..<count).map { _ in JobQueue.NewJob(name: name, payload: .json(payload)) })
            start += count
        }
    }

    private func worker(_ queue: JobQueue, concurrency: Int, handlers: JobHandlers) throws -> BenchWorker {
        var configuration = WorkerConfiguration(queues: [.init(queue.name)], concurrency: concurrency)
        configuration.maxBlockTimeout = .seconds(1)
        return try BenchWorker(server: client.configuration, configuration: configuration, handlers: handlers)
    }

    /// Jobs/s, Redis CPU µs per job and Redis commands by name of one drain at concurrency 32.
    func drain(n: Int, limits: Bool, run: Int) async throws -> (rate: Double, cpu: Double, calls: [String: Int]) {
        let queue = try await queue("bench-flow-\(limits ? "limits" : "plain")-\(run)")
        if limits {
            try await queue.inspector.setLimits(
                rate: .set(RateLimit(100_000, per: .seconds(1))), concurrency: .set(10_000), maxWaiting: .set(1_000_000_000))
        }
        try await addNoops(queue, n)
        var handlers = JobHandlers()
        handlers.register(name: "noop") { _, _ in [] }
        let before = try await ServerStats.fetch(client)
        let t0 = ContinuousClock.now
        let w = try worker(queue, concurrency: 32, handlers: handlers)
        let deadline = ContinuousClock.now + .seconds(600)
        while ContinuousClock.now < deadline {
            let c = try await queue.inspector.counts()
            if c.waiting + c.active == 0 { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        let elapsed = (ContinuousClock.now - t0).seconds
        let after = try await ServerStats.fetch(client)
        try await w.stop()
        _ = try await queue.inspector.obliterate(force: true)
        return (Double(n) / elapsed, (after.cpuSeconds - before.cpuSeconds) * 1e6 / Double(n), ServerStats.callsBetween(before, after))
    }

    /// A rate limit of `limit`/1s over `seconds` with a worker that could go far faster: the
    /// starts (from the records, Redis clock) in the 1 s window ending at each start after the
    /// first second, those in consecutive 1 s windows from the first start, and the share of
    /// the limit used.
    func rateAccuracy(limit: Int, seconds: Int) async throws -> (windows: [Int], perSecond: [Int], used: Double, starts: Int) {
        let queue = try await queue("bench-flow-rate")
        try await queue.inspector.setRetention(completed: 1_000_000)
        try await queue.inspector.setLimits(rate: .set(RateLimit(limit, per: .seconds(1))))
        let total = limit * (seconds + 2)
        try await addNoops(queue, total)
        var handlers = JobHandlers()
        handlers.register(name: "noop") { _, _ in [] }
        let w = try worker(queue, concurrency: 32, handlers: handlers)
        let deadline = ContinuousClock.now + .seconds(Double(seconds) + 60)
        while ContinuousClock.now < deadline {
            if try await queue.inspector.counts().completed >= limit * seconds + 1 { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        try await w.stop()
        let jobs = try await queue.inspector.jobs(state: .completed, limit: total)
        _ = try await queue.inspector.obliterate(force: true)
        let starts = jobs.compactMap(\.startedAt).map { Int(($0.timeIntervalSince1970 * 1000).rounded()) }.sorted()
        guard let first = starts.first else { throw BenchError("no job ran under the rate limit") }
        var windows: [Int] = []
        var low = 0
        for (i, t) in starts.enumerated() {
            while starts[low] <= t - 1000 { low += 1 }
            if t >= first + 1000 { windows.append(i - low + 1) }
        }
        let inRun = starts.filter { $0 < first + seconds * 1000 }.count
        let perSecond = (0..<seconds).map { k in starts.filter { $0 >= first + k * 1000 && $0 < first + (k + 1) * 1000 }.count }
        return (windows, perSecond, Double(inRun) / Double(limit * seconds), starts.count)
    }

    /// From a worker's start until `cap` jobs are active (they sleep 2 s), and the most seen.
    func timeToCap(cap: Int, run: Int) async throws -> (ms: Double, most: Int) {
        let queue = try await queue("bench-flow-cap-\(run)")
        try await queue.inspector.setLimits(concurrency: .set(cap))
        try await addNoops(queue, 2 * cap, name: "sleep")
        var handlers = JobHandlers()
        handlers.register(name: "sleep") { _, _ in
            try? await Task.sleep(for: .seconds(2))
            return []
        }
        let active = try QueueKeys(queue: queue.name).active
        let t0 = ContinuousClock.now
        let w = try worker(queue, concurrency: 32, handlers: handlers)
        var reached: Double?
        var most = 0
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            let n = try await client.send("ZCARD", active).int ?? 0
            most = max(most, n)
            if n >= cap, reached == nil { reached = (ContinuousClock.now - t0).seconds * 1000 }
            if reached != nil, ContinuousClock.now - t0 > .milliseconds(2500) { break }
            try await Task.sleep(for: .milliseconds(1))
        }
        try await w.stop()
        _ = try await queue.inspector.obliterate(force: true)
        guard let reached else { throw BenchError("the cap of \(cap) was never reached") }
        return (reached, most)
    }
}
