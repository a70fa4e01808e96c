import Foundation
@_spi(Benchmarks) import JobQ

/// Scenario `flow`: what flow limits cost and how exactly they hold. The drain at concurrency 32
/// of a queue with limits set too high to bind, against the same queue with none, alternating in
/// the same run; a rate limit's accuracy over 10 s; the time a worker takes to fill a
/// concurrency cap.
struct FlowScenario {
    let client: RedisClient
    let reference: RedisBenchmarkTool
    let runs: Int
    let quick: Bool

    func run() async throws -> ScenarioReport {
        var report = ScenarioReport("flow")
        let n = quick ? 20_000 : 100_000
        var plain: [Double] = []
        var limited: [Double] = []
        var plainCPU: [Double] = []
        var limitedCPU: [Double] = []
        var grouped: [Double] = []
        var groupedCPU: [Double] = []
        var calls: (plain: [String: Int], limited: [String: Int], grouped: [String: Int]) = ([:], [:], [:])
        for run in 0..<runs {
            // Alternating, and in a rotated order each run, so neither the machine's drift nor
            // what the drain before left in Redis favours one of them.
            var measured: [DrainVariant: (rate: Double, cpu: Double, calls: [String: Int])] = [:]
            let order: [DrainVariant] = [.plain, .limits, .groups]
            for i in 0..<order.count {
                let variant = order[(i + run) % order.count]
                measured[variant] = try await drain(n: n, variant, run: run)
            }
            guard let p = measured[.plain], let l = measured[.limits], let g = measured[.groups] else { continue }
            (plain, plainCPU, limited, limitedCPU) = (plain + [p.rate], plainCPU + [p.cpu], limited + [l.rate], limitedCPU + [l.cpu])
            (grouped, groupedCPU) = (grouped + [g.rate], groupedCPU + [g.cpu])
            calls = (p.calls, l.calls, g.calls)
            report.jobs += 3 * n
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
        report.add(
            Figure(
                "drain \(n.formatted()) no-op jobs, c = 32, spread over 100 groups (group concurrency 10,000: not binding)", grouped,
                unit: "jobs/s", reference: "the same jobs without groups, alternating runs", referenceValues: plain))
        report.add(
            Figure("Redis CPU per job of that drain, in 100 groups", groupedCPU, unit: "µs", reference: "without groups", referenceValues: plainCPU))
        report.note("Redis commands per job, in 100 groups: \(perJob(calls.grouped))")

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

        // A worker whose every take is refused must sleep like an idle one: its CPU over the
        // same span, against the same worker on an empty queue, in this run.
        let span = quick ? 3.0 : 10.0
        var idle: [Double] = []
        var holding: [Double] = []
        var capped: [Double] = []
        var rated: [Double] = []
        for run in 0..<runs {
            idle.append(try await waitingCPU(.empty, seconds: span, run: run))
            holding.append(try await waitingCPU(.holdOnly, seconds: span, run: run))
            capped.append(try await waitingCPU(.capHeld, seconds: span, run: run))
            rated.append(try await waitingCPU(.rateSpent, seconds: span, run: run))
        }
        report.add(
            Figure(
                "this process's CPU while its worker's takes are refused by a cap held by a running job (\(Int(span)) s)", capped, unit: "%",
                reference: "the same worker running the same job, nothing else waiting", referenceValues: holding, target: "≤ 1.5×",
                met: median(capped) <= 1.5 * max(median(holding), 0.05)))
        report.add(
            Figure(
                "this process's CPU while its worker's takes are refused by a spent rate of 1/1h (\(Int(span)) s)", rated, unit: "%",
                reference: "the same worker on an empty queue", referenceValues: idle, target: "≤ 1.5×", met: median(rated) <= 1.5 * max(median(idle), 0.05)))
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
        configuration.shutdownGrace = .seconds(1)
        return try BenchWorker(server: client.configuration, configuration: configuration, handlers: handlers)
    }

    /// What a drain of `drain(n:_:run:)` runs against.
    enum DrainVariant: String { case plain, limits, groups }

    /// Jobs/s, Redis CPU µs per job and Redis commands by name of one drain at concurrency 32
    /// (the `drain` scenario's own): no limits, limits that do not bind, or the jobs spread
    /// over 100 groups under a group concurrency that does not bind.
    func drain(n: Int, _ variant: DrainVariant, run: Int) async throws -> (rate: Double, cpu: Double, calls: [String: Int]) {
        let m = try await DrainScenario(client: client, reference: reference, runs: runs, quick: quick).drainOnce(
            n: n, concurrency: 32, run: run, label: "flow-\(variant.rawValue)",
            prepare: { queue in
                switch variant {
                case .plain: break
                case .limits:
                    try await queue.inspector.setLimits(
                        rate: .set(RateLimit(100_000, per: .seconds(1))), concurrency: .set(10_000), maxWaiting: .set(1_000_000_000))
                case .groups: try await queue.inspector.setLimits(groupConcurrency: .set(10_000))
                }
            },
            options: { i in variant == .groups ? .group("tenant-\(i % 100)") : .default })
        return (m.rate, m.cpu, m.breakdown)
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

    enum Waiting { case empty, holdOnly, capHeld, rateSpent }

    /// This process's CPU (%) over `seconds` while a worker (concurrency 8) waits: on an empty
    /// queue, running one job with nothing else waiting, on a queue whose cap of 1 that running
    /// job holds while 100 wait, or on one whose rate is spent.
    func waitingCPU(_ kind: Waiting, seconds: Double, run: Int) async throws -> Double {
        let queue = try await queue("bench-flow-wait-\(run)")
        var handlers = JobHandlers()
        handlers.register(name: "hold") { _, context in
            // Holds its slot until the measurement ends (cancelled by the shutdown).
            for _ in 0..<1_000 where !context.isCancelled { try? await Task.sleep(for: .milliseconds(100)) }
            return []
        }
        handlers.register(name: "noop") { _, _ in [] }
        switch kind {
        case .empty: break
        case .holdOnly:
            _ = try await queue.add(name: "hold", payload: .json("{}"))
        case .capHeld:
            try await queue.inspector.setLimits(concurrency: .set(1))
            _ = try await queue.add(name: "hold", payload: .json("{}"))
            try await addNoops(queue, 100)
        case .rateSpent:
            try await queue.inspector.setLimits(rate: .set(RateLimit(1, per: .seconds(3600))))
            try await addNoops(queue, 100)
        }
        let w = try worker(queue, concurrency: 8, handlers: handlers)
        // Settle: the first take (and for the rate, its one start) happens.
        let settle = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < settle {
            let c = try await queue.inspector.counts()
            if kind == .empty || (kind != .rateSpent && c.active == 1) || (kind == .rateSpent && c.completed == 1) { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        try await Task.sleep(for: .milliseconds(500))
        let cpu0 = processCPUSeconds()
        let t0 = ContinuousClock.now
        try await Task.sleep(for: .seconds(seconds))
        let used = processCPUSeconds() - cpu0
        let elapsed = (ContinuousClock.now - t0).seconds
        try await w.stop()
        _ = try await queue.inspector.obliterate(force: true)
        return used / elapsed * 100
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
