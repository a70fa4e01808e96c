import ArgumentParser
import Foundation
import Histogram
import JobQ
import LocalRedis

/// `jobq-bench`: jobq's figures as ratios to references measured in the same run on the same
/// server (DESIGN §10). Release builds only; never run in CI.
///
/// Scenario `client` (the Redis client layer): sequential awaited SET, 32 concurrent callers on
/// one connection (auto-pipelined), explicit pipelines of 16, each against `redis-benchmark -c 1`
/// with the matching `-P`. Median of `--runs` runs (default 5), min and max printed.
@main
struct JobQBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jobq-bench",
        abstract: "Measure jobq against redis-benchmark on the same server, in the same run."
    )

    @Argument(help: "Scenarios to run: client, enqueue, drain, cancel, delayed, recovery, depth, memory (default: all).")
    var scenarios: [String] = known

    static let known = ["client", "enqueue", "drain", "cancel", "delayed", "recovery", "depth", "memory"]

    @Flag(help: "Fewer operations per run: a fast look, noisier figures.")
    var quick = false

    @Option(help: "Runs per figure (the median is reported).")
    var runs = 5

    @Option(name: .customLong("markdown"), help: "Also write the result table to this Markdown file.")
    var markdownPath: String?

    @Option(help: "Run only these figures (sequential, concurrent, pipeline), e.g. to profile one.")
    var only: [String] = []

    private func wants(_ figure: String) -> Bool { scenarios.contains("client") && (only.isEmpty || only.contains(figure)) }

    func validate() throws {
        for figure in only where !["sequential", "concurrent", "pipeline"].contains(figure) {
            throw ValidationError("unknown figure \"\(figure)\" (known: sequential, concurrent, pipeline)")
        }
        for s in scenarios where !Self.known.contains(s) {
            throw ValidationError("unknown scenario \"\(s)\" (known: \(Self.known.joined(separator: ", ")))")
        }
        guard (1...50).contains(runs) else { throw ValidationError("--runs must be 1…50") }
    }

    func run() async throws {
        #if DEBUG
        print("warning: this is a debug build; run `swift run -c release jobq-bench` for real figures")
        #endif
        guard let benchmarkTool = ["/usr/bin/redis-benchmark", "/usr/local/bin/redis-benchmark"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw ValidationError("redis-benchmark not found (apt-get install -y redis-tools)")
        }
        let server: RedisServerProcess?
        let configuration: RedisConfiguration
        if let url = ProcessInfo.processInfo.environment["JOBQ_REDIS_URL"], !url.isEmpty {
            server = nil
            configuration = try RedisConfiguration.commandLine(urlFlag: nil, passwordFile: nil)
        } else {
            let started = try await RedisServerProcess.start(.init(transport: .tcp))
            server = started
            configuration = started.configuration
        }
        defer { if let server { Task { await server.destroy() } } }

        let client = RedisClient(configuration: configuration)
        let info = try await RedisServerInfo.fetch(from: client)
        let reference = RedisBenchmarkTool(path: benchmarkTool, configuration: configuration)
        let scale = quick ? 1 : 4
        let sequentialCount = 5_000 * scale
        let pipelinedCount = 50_000 * scale

        print("jobq-bench \(scenarios.joined(separator: " ")) — redis \(info.version) at \(configuration.redactedURL), \(runs) runs per figure, \(ProcessInfo.processInfo.activeProcessorCount) cores")
        var rows: [Row] = []

        // 1. Sequential awaited SET from one caller.
        var ours: [Double] = []
        var refs: [Double] = []
        var latency = Histogram<UInt64>(numberOfSignificantValueDigits: .three)
        for run in 0..<(wants("sequential") ? runs : 0) {
            refs.append(try await reference.rps(clients: 1, pipeline: 1, requests: sequentialCount))
            let start = ContinuousClock.now
            for _ in 0..<sequentialCount {
                let t0 = ContinuousClock.now
                _ = try await client.send("SET", "bench:seq", "xxx")
                if run > 0 { _ = latency.record(UInt64(max(1, (ContinuousClock.now - t0).nanoseconds / 1000))) }
            }
            ours.append(Double(sequentialCount) / (ContinuousClock.now - start).seconds)
        }
        if wants("sequential") { rows.append(Row(figure: "sequential awaited SET, 1 caller", ours: ours, reference: refs, referenceName: "redis-benchmark -c 1", target: 0.5,
                        note: "our latency p50 \(latency.valueAtPercentile(50)) µs, p99 \(latency.valueAtPercentile(99)) µs, max \(latency.max) µs")) }

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
        }
        if wants("concurrent") { rows.append(Row(figure: "32 concurrent callers, 1 connection", ours: ours, reference: refs, referenceName: "redis-benchmark -c 1 -P 32", target: 0.5, note: "")) }

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
        }
        if wants("pipeline") { rows.append(Row(figure: "explicit pipelines of 16", ours: ours, reference: refs, referenceName: "redis-benchmark -c 1 -P 16", target: 0.7, note: "")) }

        _ = try await client.send("DEL", "bench:seq", "bench:p")

        var table = rows.isEmpty ? "" : Row.markdown(rows)
        func add(_ name: String, referenceColumn: String = "reference (median, min–max)", _ report: EnqueueScenario.Report) {
            table += (table.isEmpty ? "" : "\n\n") + """
                | \(name) figure | jobq (median, min–max) | reference | \(referenceColumn) | ratio | target | |
                |---|---|---|---|---|---|---|

                """ + report.rows.joined(separator: "\n") + (report.notes.isEmpty ? "" : "\n\n" + report.notes.map { "- \($0)" }.joined(separator: "\n"))
        }
        if scenarios.contains("enqueue") {
            add("enqueue", try await EnqueueScenario(client: client, reference: reference, runs: runs, quick: quick).run())
        }
        if scenarios.contains("drain") {
            add("drain", try await DrainScenario(client: client, reference: reference, runs: runs, quick: quick).run())
        }
        if scenarios.contains("cancel") {
            add("cancel", try await CancelScenario(client: client, runs: runs, quick: quick).run())
        }
        if scenarios.contains("delayed") {
            add("delayed", referenceColumn: "reference value", try await DelayedScenario(client: client, runs: runs, quick: quick, ownServer: server != nil).run())
        }
        if scenarios.contains("depth") {
            add("depth", referenceColumn: "reference value", try await DepthScenario(client: client, runs: runs, quick: quick).run())
        }
        if scenarios.contains("memory") {
            add("memory", referenceColumn: "reference value", try await MemoryScenario(client: client, runs: runs, quick: quick).run())
        }
        if scenarios.contains("recovery") {
            add("recovery", referenceColumn: "reference value", try await RecoveryScenario(client: client, runs: runs, quick: quick).run())
        }
        await client.close()
        print()
        print(table)
        if let markdownPath {
            let header = """
                Measured \(ISO8601DateFormatter().string(from: Date())) with `swift run -c release jobq-bench \(scenarios.joined(separator: " "))`
                on \(ProcessInfo.processInfo.activeProcessorCount) cores, redis \(info.version) over TCP loopback,
                \(runs) runs per figure (median, min–max), \(sequentialCount) sequential / \(pipelinedCount) pipelined SETs per run.


                """
            try (header + table + "\n").write(toFile: markdownPath, atomically: true, encoding: .utf8)
        }
    }
}

/// One result line: our rate and the reference's, each over several runs.
struct Row {
    let figure: String
    let ours: [Double]
    let reference: [Double]
    let referenceName: String
    let target: Double
    let note: String

    var ratio: Double { median(ours) / median(reference) }

    static func markdown(_ rows: [Row]) -> String {
        var lines = [
            "| figure | jobq ops/s (median, min–max) | reference | reference ops/s (median, min–max) | ratio | target | |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in rows {
            lines.append("| \(r.figure) | \(spread(r.ours)) | `\(r.referenceName)` | \(spread(r.reference)) | \(String(format: "%.2f", r.ratio)) | ≥ \(String(format: "%.2f", r.target)) | \(r.ratio >= r.target ? "met" : "MISSED") |")
        }
        let notes = rows.filter { !$0.note.isEmpty }.map { "- \($0.figure): \($0.note)" }
        return (lines + [""] + notes).joined(separator: "\n")
    }

    static func spread(_ values: [Double]) -> String {
        "\(Int(median(values))) (\(Int(values.min() ?? 0))–\(Int(values.max() ?? 0)))"
    }
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    guard !sorted.isEmpty else { return 0 }
    return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
    var nanoseconds: Int64 { components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000 }
}
