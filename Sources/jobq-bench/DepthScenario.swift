import Foundation
import Histogram
@_spi(Benchmarks) import JobQ

/// Scenario `depth`: add and take latency with 1,000 / 100,000 / 1,000,000 jobs waiting,
/// and with 1,000,000 delayed; the cost must stay flat. "Take" is one call of the reference
/// take + finish script (`ReferenceScripts.takeAndFinish`): this build's take and finish.
struct DepthScenario {
    let client: RedisClient
    let runs: Int
    let quick: Bool

    struct Measure {
        var adds: Histogram<UInt64>
        var takes: Histogram<UInt64>
        var add: Double { Double(adds.valueAtPercentile(50)) }
        var take: Double { Double(takes.valueAtPercentile(50)) }
    }

    func run() async throws -> ScenarioReport {
        var report = ScenarioReport("depth")
        let depths = quick ? [1_000, 100_000] : [1_000, 100_000, 1_000_000]
        var cases: [(label: String, depth: Int, delayed: Bool)] = depths.map { ("\($0.formatted()) waiting", $0, false) }
        cases.append(("\(depths.last!.formatted()) delayed", depths.last!, true))
        var results: [String: [Measure]] = [:]
        for run in 0..<runs {
            for c in cases {
                results[c.label, default: []].append(try await once(depth: c.depth, delayed: c.delayed, run: run))
                report.jobs += c.depth + 2 * (quick ? 500 : 2_000)
            }
        }
        let base = results[cases[0].label] ?? []
        for c in cases {
            let m = results[c.label] ?? []
            let isBase = c.label == cases[0].label
            let add = median(m.map(\.add)) / median(base.map(\.add))
            let take = median(m.map(\.take)) / median(base.map(\.take))
            report.add(
                Figure(
                    "add p50, \(c.label)", m.map(\.add), unit: "µs", reference: isBase ? nil : "same, 1,000 waiting",
                    referenceValues: isBase ? nil : base.map(\.add), target: isBase ? nil : "≤ 1.5×", met: isBase ? nil : add <= 1.5))
            report.add(
                Figure(
                    "take + finish p50, \(c.label)", m.map(\.take), unit: "µs", reference: isBase ? nil : "same, 1,000 waiting",
                    referenceValues: isBase ? nil : base.map(\.take), target: isBase ? nil : "≤ 1.5×", met: isBase ? nil : take <= 1.5))
        }
        for c in cases {
            var adds = Histogram<UInt64>.micros()
            var takes = Histogram<UInt64>.micros()
            for m in results[c.label] ?? [] {
                adds.add(m.adds)
                takes.add(m.takes)
            }
            report.latency("add, \(c.label)", adds)
            report.latency("take + finish, \(c.label)", takes)
        }
        report.note(
            "take + finish is one call of `ReferenceScripts.takeAndFinish`: this build's takeJob and finishJob scripts back to back, by EVALSHA from one awaited caller."
        )
        return report
    }

    private func once(depth: Int, delayed: Bool, run: Int) async throws -> Measure {
        let queue = try JobQueue(name: "bench-depth-\(depth)-\(delayed ? "d" : "w")-\(run)", client: client)
        _ = try await queue.inspector.obliterate(force: true)
        var added = 0
        while added < depth {
            let n = min(10_000, depth - added)
            let options = delayed ? JobOptions(delay: .seconds(3600)) : JobOptions()
            for result in try await queue.addBulk((0..<n).map { _ in JobQueue.NewJob(name: "noop", payload: EnqueueScenario.payload, options: options) }) {
                _ = try result.get()
            }
            added += n
        }
        let samples = quick ? 500 : 2_000
        // Adds at this depth (they join the waiting list).
        var adds = Histogram<UInt64>.micros()
        for _ in 0..<samples {
            let t0 = ContinuousClock.now
            _ = try await queue.add(name: "noop", payload: EnqueueScenario.payload)
            adds.record(since: t0)
        }
        // Takes at this depth: each takes the oldest waiting job and completes it.
        let script = try ReferenceScripts.takeAndFinish(queue: queue.name, client: client)
        guard let sha = try await client.send("SCRIPT", "LOAD", script.source).string else { throw BenchError("SCRIPT LOAD failed") }
        var takes = Histogram<UInt64>.micros()
        for _ in 0..<samples {
            let t0 = ContinuousClock.now
            let reply = try await client.send(RedisCommand("EVALSHA", arguments: [sha] + script.arguments))
            takes.record(since: t0)
            guard reply.int == 1 else { throw BenchError("take + finish at depth \(depth) answered \(reply)") }
        }
        _ = try await queue.inspector.obliterate(force: true)
        return Measure(adds: adds, takes: takes)
    }
}
