import Foundation
import Histogram
import JobQ

/// Scenario `client` (the Redis client layer): sequential awaited SET, 32 concurrent
/// callers on one connection (auto-pipelined), explicit pipelines of 16, each against
/// `redis-benchmark -c 1` with the matching `-P`.
struct ClientScenario {
    let client: RedisClient
    let reference: RedisBenchmarkTool
    let runs: Int
    let quick: Bool
    /// Figures to run (sequential, concurrent, pipeline); empty means all.
    let only: [String]

    static let figures = ["sequential", "concurrent", "pipeline"]

    private func wants(_ figure: String) -> Bool { only.isEmpty || only.contains(figure) }

    func run() async throws -> ScenarioReport {
        var report = ScenarioReport("client")
        let scale = quick ? 1 : 4
        let sequentialCount = 5_000 * scale
        let pipelinedCount = 50_000 * scale

        // 1. Sequential awaited SET from one caller.
        var ours: [Double] = []
        var refs: [Double] = []
        var latency = Histogram<UInt64>.micros()
        for run in 0..<(wants("sequential") ? runs : 0) {
            let ref = try await reference.run(clients: 1, pipeline: 1, requests: sequentialCount, command: ["-t", "set"])
            refs.append(ref.rps)
            let start = ContinuousClock.now
            for _ in 0..<sequentialCount {
                let t0 = ContinuousClock.now
                _ = try await client.send("SET", "bench:seq", "xxx")
                if run > 0 || runs == 1 { latency.record(since: t0) }
            }
            ours.append(Double(sequentialCount) / (ContinuousClock.now - start).seconds)
            report.jobs += 2 * sequentialCount
        }
        if wants("sequential") {
            report.add(
                Figure(
                    "sequential awaited SET, 1 caller", ours, unit: "ops/s", reference: "`redis-benchmark -c 1`", referenceValues: refs,
                    target: "≥ 0.5×", met: median(ours) / median(refs) >= 0.5))
            report.latency("awaited SET, 1 caller", latency)
        }

        // 2. 32 concurrent callers on one connection, pipelined automatically.
        ours = []
        refs = []
        for _ in 0..<(wants("concurrent") ? runs : 0) {
            refs.append(try await reference.rps(clients: 1, pipeline: 32, requests: pipelinedCount))
            let perTask = pipelinedCount / 32
            let start = ContinuousClock.now
            try await withThrowingTaskGroup(of: Void.self) { group in
                for t in 0..<32 {
                    group.addTask {
                        let key = "bench:c\(t)"
                        for _ in 0..<perTask { _ = try await client.send("SET", key, "xxx") }
                    }
                }
                try await group.waitForAll()
            }
            ours.append(Double(perTask * 32) / (ContinuousClock.now - start).seconds)
            report.jobs += 2 * pipelinedCount
        }
        if wants("concurrent") {
            report.add(
                Figure(
                    "32 concurrent callers, 1 connection", ours, unit: "ops/s", reference: "`redis-benchmark -c 1 -P 32`", referenceValues: refs,
                    target: "≥ 0.5×", met: median(ours) / median(refs) >= 0.5))
        }

        // 3. Explicit pipelines of 16.
        ours = []
        refs = []
        let pipeline = (0..<16).map { _ in RedisCommand("SET", "bench:p", "xxx") }
        for _ in 0..<(wants("pipeline") ? runs : 0) {
            refs.append(try await reference.rps(clients: 1, pipeline: 16, requests: pipelinedCount))
            let batches = pipelinedCount / 16
            let start = ContinuousClock.now
            for _ in 0..<batches { _ = try await client.pipeline(pipeline) }
            ours.append(Double(batches * 16) / (ContinuousClock.now - start).seconds)
            report.jobs += 2 * pipelinedCount
        }
        if wants("pipeline") {
            report.add(
                Figure(
                    "explicit pipelines of 16", ours, unit: "ops/s", reference: "`redis-benchmark -c 1 -P 16`", referenceValues: refs,
                    target: "≥ 0.7×", met: median(ours) / median(refs) >= 0.7))
        }
        _ = try await client.send(RedisCommand("DEL", arguments: ["bench:seq", "bench:p"] + (0..<32).map { "bench:c\($0)" }))
        report.note("here a \"job\" is one SET (ours and redis-benchmark's).")
        return report
    }
}
