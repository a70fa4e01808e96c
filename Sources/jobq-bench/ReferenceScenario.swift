import Foundation
import Histogram
@_spi(Benchmarks) import JobQ

/// Scenario `reference`: what this server does with no jobq client in the way, the
/// yardsticks every other scenario is a ratio to. `redis-benchmark` SET, a bare PUBLISH →
/// subscriber hop, and our own scripts called by `redis-benchmark` (the add script; take + finish
/// in one script) at `-c 1` and pipelined 16, 32 and 100 deep, each with Redis CPU and commands
/// per call; then BullMQ (Python, from PyPI) adding and draining on the same server.
struct ReferenceScenario {
    let client: RedisClient
    let reference: RedisBenchmarkTool
    let runs: Int
    let quick: Bool

    static let depths = [1, 16, 32, 100]

    struct Cost {
        var rate: Double
        var cpuMicros: Double
        var calls: Double
    }

    func run() async throws -> ScenarioReport {
        var report = ScenarioReport("reference")
        var set: [Int: [Double]] = [:]
        var add: [Int: [Cost]] = [:]
        var take: [Int: [Cost]] = [:]
        var publish = Histogram<UInt64>.micros()
        var publishP50: [Double] = []
        let drain = DrainScenario(client: client, reference: reference, runs: runs, quick: quick)
        for run in 0..<runs {
            for depth in Self.depths {
                let n = depth == 1 ? (quick ? 10_000 : 50_000) : (quick ? 50_000 : 200_000)
                set[depth, default: []].append(try await reference.rps(clients: 1, pipeline: depth, requests: n))
                report.jobs += n

                let adds = depth == 1 ? (quick ? 2_000 : 10_000) : (quick ? 20_000 : 100_000)
                let queue = "bench-ref-add-\(run)-\(depth)"
                let command = try await EnqueueScenario.addScriptCommand(client: client, queue: queue)
                add[depth, default: []].append(
                    try await cost(calls: adds) {
                        try await reference.run(clients: 1, pipeline: depth, requests: adds, command: command, randomKeyspace: 1_000_000_000).rps
                    })
                _ = try await QueueInspector(name: queue, client: client).obliterate(force: true)
                report.jobs += adds

                let takes = depth == 1 ? (quick ? 2_000 : 10_000) : (quick ? 10_000 : 50_000)
                let m = try await drain.referenceOnce(n: takes, run: run, pipeline: depth)
                take[depth, default: []].append(Cost(rate: m.rate, cpuMicros: m.cpuMicrosPerCall, calls: m.callsPerCall))
                report.jobs += takes
            }
            let h = try await CancelScenario(client: client, runs: 1, quick: quick).publishLatency(count: quick ? 1_000 : 5_000)
            publish.add(h)
            publishP50.append(Double(h.valueAtPercentile(50)))
        }
        for depth in Self.depths {
            let label = depth == 1 ? "-c 1" : "-c 1 -P \(depth)"
            report.add(Figure("`redis-benchmark \(label)` SET", set[depth] ?? [], unit: "ops/s"))
        }
        for (name, costs) in [("addJob-9 (one add)", add), ("take + finish in one script (one job)", take)] {
            for depth in Self.depths {
                let label = depth == 1 ? "-c 1" : "-c 1 -P \(depth)"
                let m = costs[depth] ?? []
                report.add(Figure("`redis-benchmark \(label)` EVALSHA \(name)", m.map(\.rate), unit: "calls/s"))
                report.add(Figure("… Redis CPU per call", m.map(\.cpuMicros), unit: "µs"))
                report.add(Figure("… Redis commands per call (EVALSHA included)", m.map(\.calls), unit: ""))
            }
        }
        report.add(Figure("PUBLISH → subscriber on another connection, p50", publishP50, unit: "µs"))
        report.latency("PUBLISH sent → subscriber got it (one at a time)", publish)

        // BullMQ on the same server.
        var bullAdds: [BullMQReference.Measure] = []
        var bullBulk: [BullMQReference.Measure] = []
        var bullDrain: [BullMQReference.Measure] = []
        do {
            let bull = BullMQReference(configuration: client.configuration)
            for run in 0..<runs {
                bullAdds.append(try await bull.measureAdds(quick ? 2_000 : 5_000, queue: "bench-ref-bull-add-\(run)"))
                bullBulk.append(try await bull.measureAdds(quick ? 10_000 : 20_000, queue: "bench-ref-bull-bulk-\(run)", bulk: true))
                bullDrain.append(try await bull.measureDrain(quick ? 5_000 : 30_000, queue: "bench-ref-bull-drain-\(run)", concurrency: 32))
                report.jobs += bullAdds.last!.n + bullBulk.last!.n + bullDrain.last!.n
            }
        } catch {
            report.note("BullMQ skipped: \(error)")
        }
        for (name, m) in [
            ("`Queue.add`, one at a time", bullAdds), ("`Queue.addBulk` (1,000 per call)", bullBulk), ("Python `Worker`, concurrency 32, drain", bullDrain),
        ] where !m.isEmpty {
            report.add(Figure("BullMQ \(BullMQReference.version()) \(name)", m.map(\.rate), unit: "jobs/s"))
            report.add(Figure("… Redis CPU per job", m.map(\.cpuMicrosPerJob), unit: "µs"))
            report.add(Figure("… Redis commands per job", m.map(\.callsPerJob), unit: ""))
            let last = m.last!
            report.note(
                "BullMQ \(name): "
                    + last.calls.sorted { $0.value > $1.value }.prefix(12).map { "\($0.key) \(f2(Double($0.value) / Double(last.n)))" }.joined(separator: ", "))
        }
        return report
    }

    /// Runs `body` (which makes `calls` script calls and returns its rate) between two `INFO` readings.
    private func cost(calls: Int, _ body: () async throws -> Double) async throws -> Cost {
        let before = try await ServerStats.fetch(client)
        let rate = try await body()
        let after = try await ServerStats.fetch(client)
        let counted = ServerStats.callsBetween(before, after)
        return Cost(
            rate: rate, cpuMicros: (after.cpuSeconds - before.cpuSeconds) * 1e6 / Double(calls),
            calls: Double(counted.values.reduce(0, +)) / Double(calls))
    }
}
