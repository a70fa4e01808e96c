import ArgumentParser
import Foundation
import JobQ
import JobQCommandLine
import LocalRedis

/// `jobq-bench`: jobq's figures as ratios to references measured in the same run on the same
/// server (`docs/performance.md`). Release builds only; never run in CI.
///
/// Each scenario prints its table as it finishes; at the end the bench rewrites its sections of
/// BENCHMARKS.md (and writes `--json` when asked). Every scenario is bounded in count and time.
@main
struct JobQBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jobq-bench",
        abstract: "Measure jobq against redis-benchmark and BullMQ on the same server, in the same run.",
        discussion: """
            Starts its own redis-server on a loopback port (or uses JOBQ_REDIS_URL).
            Scenarios, in the order they run:
              reference  this server without jobq: redis-benchmark SET,
                         PUBLISH → subscriber, our scripts at -c 1 and
                         -P 16/32/100; BullMQ add and drain
              client     the Redis client layer against redis-benchmark
              enqueue    single adds (latency), addBulk of 100,000
              drain      100,000 no-op jobs, 1 worker, concurrency 1/8/32
              flow       drain with limits set but not binding vs none
                         (alternating); rate accuracy; time to fill a cap
              steady     producers and a worker at once, at 50 % and
                         80 % of the maximum: add → start, add → completed
              scale      drain with 1, 2 and 4 jobq-worker processes
              scale-cluster  drain on a private 3-primary Redis Cluster
                         with queues on 1, 2 and 3 shards; per-shard
                         Redis CPU
              depth      add and take with 1,000 / 100,000 / 1,000,000
                         jobs waiting, and 1,000,000 delayed
              cancel     cancel → token fired, 1,000 running jobs
              delayed    lateness of 10,000 delayed jobs, hz 10 and 100
              schedules  10,000 schedules every 1 s: tick → start lateness
                         against delayed jobs at the same rate; Redis CPU
                         per tick
              recovery   kill -9 of a worker holding 100 jobs
              memory     Redis bytes per job; worker RSS idle and busy
            And, alone: `jobq-bench headline` rewrites README.md's headline table from
            BENCHMARKS.md (`--check`: only compare, exit 1 when they differ).
            scale, scale-cluster, recovery and memory run the jobq-worker built next to
            this binary (swift build -c release --product jobq-worker).
            """,
        version: "jobq-bench " + JobQVersion.current
    )

    static func main() async { await guardedMain() }

    static let known = [
        "reference", "client", "enqueue", "drain", "flow", "steady", "scale", "scale-cluster", "depth", "cancel", "delayed", "schedules", "recovery", "memory",
        "tls",
    ]

    @Argument(help: "Scenarios to run (default: all). See the list below.")
    var scenarios: [String] = []

    @Flag(
        help:
            "A fast look: 1 run per figure and smaller counts (under 2 minutes for all scenarios); BENCHMARKS.md is left alone unless --benchmarks-file is given."
    )
    var quick = false

    @Option(help: "Runs per figure; the median is reported with min–max (default 5, or 1 with --quick).")
    var runs: Int?

    @Option(name: .customLong("json"), help: "Also write every figure, per run, to this JSON file.")
    var jsonPath: String?

    @Option(name: .customLong("benchmarks-file"), help: "The Markdown file whose scenario sections are rewritten (default BENCHMARKS.md; not with --quick).")
    var benchmarksFile: String?

    @Flag(name: .customLong("no-rewrite"), help: "Do not touch BENCHMARKS.md.")
    var noRewrite = false

    @Option(help: "client scenario only: run just these figures (sequential, concurrent, pipeline), e.g. to profile one.")
    var only: [String] = []

    @Flag(help: "headline only: compare README.md's table with BENCHMARKS.md, exit 1 when they differ, change nothing.")
    var check = false

    @Option(help: "headline only: the README whose table is rewritten (default README.md).")
    var readme = "README.md"

    func validate() throws {
        if scenarios == ["headline"] { return }
        for figure in only where !ClientScenario.figures.contains(figure) {
            throw ValidationError("unknown figure \"\(figure)\" (known: \(ClientScenario.figures.joined(separator: ", ")))")
        }
        for s in scenarios where !Self.known.contains(s) {
            throw ValidationError("unknown scenario \"\(s)\" (known: \(Self.known.joined(separator: ", ")))")
        }
        if let runs, !(1...50).contains(runs) { throw ValidationError("--runs must be 1…50") }
    }

    func run() async throws {
        if scenarios == ["headline"] {
            let benchmarks = benchmarksFile ?? "BENCHMARKS.md"
            if try Headline.update(readme: readme, benchmarks: benchmarks, check: check) {
                print("\(readme)'s headline table says what \(benchmarks) says")
            } else if check {
                print("\(readme)'s headline table differs from \(benchmarks): run `swift run jobq-bench headline`")
                throw ExitCode(1)
            } else {
                print("rewrote \(readme)'s headline table from \(benchmarks)")
            }
            return
        }
        #if DEBUG
            print("warning: this is a debug build; run `swift run -c release jobq-bench` for real figures")
        #endif
        let runs = self.runs ?? (quick ? 1 : 5)
        let selected = scenarios.isEmpty ? Self.known : Self.known.filter { scenarios.contains($0) }
        guard
            let benchmarkTool = ["/usr/bin/redis-benchmark", "/usr/local/bin/redis-benchmark"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }
            )
        else {
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
        let client = RedisClient(configuration: configuration)
        do {
            try await measure(selected, runs: runs, client: client, tool: benchmarkTool, ownServer: server != nil)
        } catch {
            await client.close()
            if let server { await server.destroy() }
            throw error
        }
        await client.close()
        if let server { await server.destroy() }
    }

    private func measure(_ selected: [String], runs: Int, client: RedisClient, tool: String, ownServer: Bool) async throws {
        let configuration = client.configuration
        let environment = try await BenchEnvironment.describe(client: client, command: commandLine(runs: runs), runs: runs, quick: quick, ownServer: ownServer)
        let reference = RedisBenchmarkTool(path: tool, configuration: configuration)
        print(
            "jobq-bench \(selected.joined(separator: " ")) — \(environment.summary), \(runs) run\(runs == 1 ? "" : "s") per figure\(quick ? ", --quick" : "")")

        var reports: [ScenarioReport] = []
        for scenario in selected {
            print("\n## \(scenario) (started \(Date().formatted(date: .omitted, time: .standard)))")
            fflush(nil)
            let before = try await ServerStats.fetch(client)
            let t0 = ContinuousClock.now
            var report: ScenarioReport
            switch scenario {
            case "reference": report = try await ReferenceScenario(client: client, reference: reference, runs: runs, quick: quick).run()
            case "client": report = try await ClientScenario(client: client, reference: reference, runs: runs, quick: quick, only: only).run()
            case "enqueue": report = try await EnqueueScenario(client: client, reference: reference, runs: runs, quick: quick).run()
            case "drain": report = try await DrainScenario(client: client, reference: reference, runs: runs, quick: quick).run()
            case "flow": report = try await FlowScenario(client: client, reference: reference, runs: runs, quick: quick).run()
            case "steady": report = try await SteadyScenario(client: client, runs: runs, quick: quick).run()
            case "scale": report = try await ScaleScenario(client: client, runs: runs, quick: quick).run()
            case "scale-cluster": report = try await ScaleClusterScenario(runs: runs, quick: quick).run()
            case "depth": report = try await DepthScenario(client: client, runs: runs, quick: quick).run()
            case "cancel": report = try await CancelScenario(client: client, runs: runs, quick: quick).run()
            case "delayed": report = try await DelayedScenario(client: client, runs: runs, quick: quick, ownServer: ownServer).run()
            case "schedules": report = try await SchedulesScenario(client: client, runs: runs, quick: quick).run()
            case "recovery": report = try await RecoveryScenario(client: client, runs: runs, quick: quick).run()
            case "memory": report = try await MemoryScenario(client: client, runs: runs, quick: quick).run()
            case "tls": report = try await TLSScenario(reference: reference, runs: runs, quick: quick).run()
            default: throw ValidationError("unknown scenario \(scenario)")
            }
            report.seconds = (ContinuousClock.now - t0).seconds
            let after = try await ServerStats.fetch(client)
            if report.jobs > 0 {
                report.redisCost = RedisCost(
                    jobs: report.jobs, cpuMicrosPerJob: (after.cpuSeconds - before.cpuSeconds) * 1e6 / Double(report.jobs),
                    callsPerJob: Double(ServerStats.callsBetween(before, after).values.reduce(0, +)) / Double(report.jobs))
            }
            print(report.markdown)
            print("(\(scenario): \(Int(report.seconds)) s)")
            fflush(nil)  // each scenario's table shows when it ends, also when stdout is a file
            reports.append(report)
        }

        let missed = reports.flatMap { r in r.figures.filter { $0.met == false }.map { "\(r.scenario): \($0.name)" } }
        print(
            "\n\(reports.map(\.figures.count).reduce(0, +)) figures in \(Int(reports.map(\.seconds).reduce(0, +))) s; \(missed.isEmpty ? "every target met" : "targets missed: \(missed.count)")"
        )
        for m in missed { print("  missed — \(m)") }

        if let jsonPath {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            try encoder.encode(BenchResults(environment: environment, scenarios: reports)).write(to: URL(fileURLWithPath: jsonPath))
            print("wrote \(jsonPath)")
        }
        if let path = noRewrite ? nil : (benchmarksFile ?? (quick ? nil : "BENCHMARKS.md")) {
            try BenchmarksFile(path: path).update(environment: environment, reports: reports, complete: selected == Self.known)
            print("rewrote the \(reports.map(\.scenario).joined(separator: ", ")) section\(reports.count == 1 ? "" : "s") of \(path)")
            if FileManager.default.fileExists(atPath: readme), try !Headline.update(readme: readme, benchmarks: path, check: false) {
                print("rewrote \(readme)'s headline table")
            }
        }
    }

    /// The command that reproduces this run.
    private func commandLine(runs: Int) -> String {
        var words = ["swift", "run", "-c", "release", "jobq-bench"] + scenarios
        if quick { words.append("--quick") }
        if self.runs != nil { words += ["--runs", String(runs)] }
        if !only.isEmpty { words += only.flatMap { ["--only", $0] } }
        return words.joined(separator: " ")
    }
}

/// Everything `--json` writes.
struct BenchResults: Encodable {
    var environment: BenchEnvironment
    var scenarios: [ScenarioReport]
}

func f1(_ v: Double) -> String { String(format: "%.1f", v) }
func f2(_ v: Double) -> String { String(format: "%.2f", v) }

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
    var nanoseconds: Int64 { components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000 }
}
