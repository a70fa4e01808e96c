import ArgumentParser
import Foundation
import JobQ
import JobQCommandLine
import LocalRedis

#if canImport(Glibc)
    import Glibc
#endif

/// `jobq-chaos`: proves "never lost, ends exactly once" with real processes, real kills and a
/// real Redis restart (`docs/guarantees.md`, `docs/job-lifecycle.md`, `docs/client.md`).
///
/// `jobq-chaos run` (the default) starts a private `redis-server` with AOF (`appendfsync always`),
/// 2 producer processes and 3 worker processes of this same binary, then for the length of the
/// run: `kill -9`s a random worker every 1–3 s and starts a new one, cuts Redis connections
/// (`CLIENT KILL TYPE normal` / `TYPE pubsub`) at random, restarts Redis once on the same port,
/// and once sends every worker SIGTERM (the graceful path) and starts them again. When every
/// added job has ended it checks the invariants from the logs the producers and handlers wrote
/// outside Redis, prints one summary line and exits 1 on any violation.
@main
struct JobQChaos: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jobq-chaos",
        abstract: "Kill workers, cut connections and restart Redis under load; then prove no job was lost.",
        version: "jobq-chaos " + JobQVersion.current,
        subcommands: [Run.self, Produce.self, Work.self],
        defaultSubcommand: Run.self
    )

    static func main() async { await guardedMain() }
}

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the chaos test (default: about a minute, CI-sized; --long: a 10-minute soak).",
        discussion: """
            Exit status: 0 when every check held, 1 on any violation (each is printed), 2 usage.
            The run's logs stay in the printed directory with --keep (always on a violation).
            """
    )

    @Flag(help: "A soak: 20,000 jobs added over 10 minutes (default: 1,200 over 40 s).")
    var long = false

    @Option(help: "Jobs to add (split between the 2 producers).")
    var jobs: Int?

    @Option(help: "Seconds over which the producers add them; the chaos lasts as long.")
    var seconds: Double?

    @Option(help: "Seed for the job mix and the chaos schedule (printed, so a run can be replayed).")
    var seed: UInt64?

    @Option(help: "Worker processes.")
    var workers = 3

    @Flag(help: "Keep the run's directory (logs, Redis AOF) even when every check held.")
    var keep = false

    @Flag(help: "Every connection over TLS (a TLS-only server with certificates made for the run).")
    var tls = false

    @Flag(help: "Flow limits on the queue (a concurrency cap of half the workers' slots, a rate of 300/1s): the cap must hold through every fault.")
    var limits = false

    @Flag(help: .hidden)
    var sabotage = false

    func validate() throws {
        if let jobs, !(10...1_000_000).contains(jobs) { throw ValidationError("--jobs must be 10…1,000,000") }
        if let seconds, !(5...7_200).contains(seconds) { throw ValidationError("--seconds must be 5…7,200") }
        guard (1...16).contains(workers) else { throw ValidationError("--workers must be 1…16") }
    }

    func run() async throws {
        let settings = ChaosRun.Settings(
            jobs: jobs ?? (long ? 20_000 : 1_200),
            seconds: seconds ?? (long ? 600 : 40),
            seed: seed ?? UInt64.random(in: 1...999_999),
            workers: workers,
            sabotage: sabotage, tls: tls, limits: limits)
        let outcome = try await ChaosRun(settings: settings).run()
        print(outcome.summary)
        for v in outcome.violations.prefix(30) { print("  violation: \(v)") }
        if outcome.violations.count > 30 { print("  … and \(outcome.violations.count - 30) more") }
        if keep || !outcome.violations.isEmpty {
            print("logs kept in \(outcome.directory)")
        } else {
            try? FileManager.default.removeItem(atPath: outcome.directory)
        }
        fflush(nil)
        if !outcome.violations.isEmpty { throw ExitCode(1) }
    }
}
