import Foundation
import Histogram
@_spi(Benchmarks) import JobQ

/// Scenario `depth` (issue 8): add and take latency with 1,000 / 100,000 / 1,000,000 jobs waiting,
/// and with 1,000,000 delayed; the cost must stay flat. "Take" is one call of the reference
/// take + finish script (`ReferenceScripts.takeAndFinish`): this build's take and finish.
struct DepthScenario {
    let client: RedisClient
    let runs: Int
    let quick: Bool

    struct Measure {
        var add: Double
        var take: Double
    }

    func run() async throws -> EnqueueScenario.Report {
        var report = EnqueueScenario.Report()
        let depths = quick ? [1_000, 100_000] : [1_000, 100_000, 1_000_000]
        var cases: [(label: String, depth: Int, delayed: Bool)] = depths.map { ("\($0.formatted()) waiting", $0, false) }
        cases.append(("\(depths.last!.formatted()) delayed", depths.last!, true))
        var results: [String: [Measure]] = [:]
        for run in 0..<runs {
            for c in cases { results[c.label, default: []].append(try await once(depth: c.depth, delayed: c.delayed, run: run)) }
        }
        let base = results[cases[0].label] ?? []
        let baseAdd = median(base.map(\.add)), baseTake = median(base.map(\.take))
        for c in cases {
            let m = results[c.label] ?? []
            let add = median(m.map(\.add)), take = median(m.map(\.take))
            let isBase = c.label == cases[0].label
            report.rows.append("| add p50, \(c.label) | \(us(m.map(\.add))) | same, 1,000 waiting | \(Int(baseAdd)) µs | \(f2(add / baseAdd))× | \(isBase ? "—" : "≤ 1.5×") | \(isBase ? "" : add / baseAdd <= 1.5 ? "met" : "MISSED") |")
            report.rows.append("| take + finish p50, \(c.label) | \(us(m.map(\.take))) | same, 1,000 waiting | \(Int(baseTake)) µs | \(f2(take / baseTake))× | \(isBase ? "—" : "≤ 1.5×") | \(isBase ? "" : take / baseTake <= 1.5 ? "met" : "MISSED") |")
        }
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
        var adds = Histogram<UInt64>(numberOfSignificantValueDigits: .three)
        for _ in 0..<samples {
            let t0 = ContinuousClock.now
            _ = try await queue.add(name: "noop", payload: EnqueueScenario.payload)
            _ = adds.record(UInt64(max(1, (ContinuousClock.now - t0).nanoseconds / 1000)))
        }
        // Takes at this depth: each takes the oldest waiting job and completes it.
        let script = try ReferenceScripts.takeAndFinish(queue: queue.name)
        guard let sha = try await client.send("SCRIPT", "LOAD", script.source).string else { throw BenchError("SCRIPT LOAD failed") }
        var takes = Histogram<UInt64>(numberOfSignificantValueDigits: .three)
        for _ in 0..<samples {
            let t0 = ContinuousClock.now
            let reply = try await client.send(RedisCommand("EVALSHA", arguments: [sha] + script.arguments))
            _ = takes.record(UInt64(max(1, (ContinuousClock.now - t0).nanoseconds / 1000)))
            guard reply.int == 1 else { throw BenchError("take + finish at depth \(depth) answered \(reply)") }
        }
        _ = try await queue.inspector.obliterate(force: true)
        return Measure(add: Double(adds.valueAtPercentile(50)), take: Double(takes.valueAtPercentile(50)))
    }
}
