import ArgumentParser
import Foundation
import JobQ
import JobQCommandLine
import LocalRedis
import Synchronization

/// `jobq-demo`: a fleet of `jobq-worker` processes chewing through real-looking jobs — emails,
/// image resizes, data syncs, reports with progress and flaky webhooks that are retried — with a
/// live account of who runs what, a cancellation, and a summary. Starts a private `redis-server`
/// unless `$JOBQ_REDIS_URL` is set.
@main
struct JobQDemo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jobq-demo",
        abstract: "Watch a fleet of jobq-worker processes run jobs of five kinds across four queues.",
        discussion: """
            Without $JOBQ_REDIS_URL a private redis-server is started on a free loopback port and stopped \
            at the end (also on Ctrl-C). With it, the demo's queues get a unique prefix and are deleted at \
            the end. Failures are planned from --seed: the same seed gives the same run plan.
            """,
        version: "jobq-demo " + JobQVersion.current
    )

    static func main() async { await guardedMain() }

    @Option(help: "Jobs to add (5–5000), split 5:3:4:2:6 across email, resize, sync, report, webhook.")
    var jobs = 20

    @Option(help: "jobq-worker processes to start (1–16).")
    var workers = 4

    @Option(help: "Jobs each worker runs at once (1–64).")
    var concurrency = 3

    @Option(help: "Seed for durations and planned webhook failures.")
    var seed: UInt64 = 2026

    func validate() throws {
        guard (5...5000).contains(jobs) else { throw ValidationError("--jobs must be 5…5000, not \(jobs)") }
        guard (1...16).contains(workers) else { throw ValidationError("--workers must be 1…16, not \(workers)") }
        guard (1...64).contains(concurrency) else { throw ValidationError("--concurrency must be 1…64, not \(concurrency)") }
    }

    func run() async throws {
        let startedAt = ContinuousClock.now
        let workerBinary = try Self.siblingBinary("jobq-worker")
        let demoRSSBefore = rssKiB(getpid())

        // Redis: private, or the one in $JOBQ_REDIS_URL.
        let server: RedisServerProcess?
        let configuration: RedisConfiguration
        var prefix = ""
        if let url = ProcessInfo.processInfo.environment["JOBQ_REDIS_URL"], !url.isEmpty {
            server = nil
            configuration = try RedisConfiguration.commandLine(urlFlag: nil, passwordFile: nil)
            prefix = "demo-\(UUID().uuidString.prefix(6).lowercased())-"
            say("using Redis at \(configuration.redactedURL) ($JOBQ_REDIS_URL); queues \(prefix)*")
        } else {
            let started = try await RedisServerProcess.start(.init(transport: .tcp))
            server = started
            configuration = started.configuration
            say("started a private redis-server (pid \(started.pid ?? 0)) at \(started.url)")
        }
        let fleet = Fleet(server: server)
        defer { fleet.stopSignals() }

        do {
            try await play(
                fleet: fleet, server: server, configuration: configuration, prefix: prefix,
                startedAt: startedAt, workerBinary: workerBinary, demoRSSBefore: demoRSSBefore)
        } catch {
            // Whatever went wrong, leave nothing running.
            _ = await fleet.stopWorkers()
            if let server { await server.destroy() }
            throw error
        }
    }

    func play(
        fleet: Fleet, server: RedisServerProcess?, configuration: RedisConfiguration, prefix: String,
        startedAt: ContinuousClock.Instant, workerBinary: String, demoRSSBefore: Int
    ) async throws {
        let client = RedisClient(configuration: configuration)
        let plan = Plan(jobs: jobs, seed: seed, prefix: prefix)
        var queues: [String: JobQueue] = [:]
        for name in plan.queueNames {
            let queue = try JobQueue(name: name, client: client)
            try await queue.inspector.setRetention(completed: 10_000, failed: 10_000, cancelled: 10_000)
            queues[name] = queue
        }

        // One stream for everything the loop below reacts to: events of every queue, and a tick.
        let (updates, sink) = AsyncStream<Update>.makeStream()
        var readers: [Task<Void, Never>] = []
        for (name, queue) in queues {
            readers.append(
                Task {
                    do {
                        for try await element in queue.events(from: .beginning) {
                            if case .event(let e) = element { sink.yield(.event(name, e)) }
                        }
                    } catch {
                        sink.yield(.readerFailed(name, "\(error)"))
                    }
                })
        }
        let ticker = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(2))
                sink.yield(.tick)
            }
        }

        // The fleet: N worker processes serving all four queues.
        var environment = [
            "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin",
            "JOBQ_REDIS_URL": Self.urlWithPassword(configuration),
        ]
        if let home = ProcessInfo.processInfo.environment["HOME"] { environment["HOME"] = home }
        var arguments = ["--concurrency", String(concurrency), "--lease", "5s", "--log-level", "warning", "--shutdown-grace", "10s"]
        for name in plan.queueNames { arguments += ["--queue", name] }
        for kind in Kind.allCases { arguments += ["--handler", "\(kind.rawValue)=demo"] }
        for i in 1...workers {
            try fleet.startWorker(binary: workerBinary, arguments: arguments + ["--worker-id", "demo-w\(i)"], environment: environment)
        }
        say("started \(workers) jobq-worker processes (pids \(fleet.pids.map(String.init).joined(separator: ", "))), \(concurrency) jobs each at a time")

        // The jobs.
        var kindByID: [String: Kind] = [:]
        var queueOfID: [String: String] = [:]
        var cancelTarget: String?
        for (name, indices) in plan.byQueue {
            guard let queue = queues[name] else { continue }
            let results = try await queue.addBulk(indices.map { plan.jobs[$0].newJob })
            for (index, result) in zip(indices, results) {
                let id = try result.get().id
                kindByID[id] = plan.jobs[index].kind
                queueOfID[id] = name
                if index == plan.cancelIndex { cancelTarget = id }
            }
        }
        say(
            "added \(plan.jobs.count) jobs: "
                + Kind.allCases.map { kind in "\(plan.jobs.filter { $0.kind == kind }.count) \(kind.rawValue)" }.joined(separator: ", ")
                + " (seed \(seed); \(plan.jobs.filter { $0.failAttempts > 0 }.count) webhook(s) planned to fail once)")
        say("")

        var tally = Tally()
        var cancelSent = false
        let deadline = ContinuousClock.now + .seconds(60 + Double(jobs) * 2)

        loop: for await update in updates {
            switch update {
            case .tick:
                if ContinuousClock.now > deadline {
                    say("the demo did not finish in time: \(tally.finished) of \(plan.jobs.count) jobs ended")
                    break loop
                }
                await printStatus(queues: queues, plan: plan, tally: tally, fleet: fleet)
            case .readerFailed(let name, let error):
                say("event stream of \(name) failed: \(error)")
            case .event(_, let e):
                guard let kind = kindByID[e.jobID] else { continue }
                let tag = "job \(e.jobID.suffix(6)) (\(kind.rawValue))"
                switch e.kind {
                case .active:
                    tally.started[e.jobID] = .now
                    say("\(worker(e.workerID)): started \(tag)\(attemptNote(e.attempt))")
                case .progress:
                    let percent = e.progress?.percent ?? 0
                    say("\(worker(tally.runner(e.jobID, from: e))): \(tag) at \(Int(percent))%")
                    if e.jobID == cancelTarget, percent >= 50, !cancelSent, let queue = queueOfID[e.jobID].flatMap({ queues[$0] }) {
                        cancelSent = true
                        let outcome = try await queue.cancel(e.jobID, reason: "demo: cancelled at 50%", requestedBy: "jobq-demo")
                        say("demo: cancelling \(tag) at \(Int(percent))% → \(outcome)")
                    }
                case .completed:
                    tally.completed += 1
                    say("\(worker(tally.runner(e.jobID, from: e))): completed \(tag) in \(tally.elapsed(e.jobID))")
                case .retrying:
                    tally.retried += 1
                    let delay = e.retryDelay.map { Int($0 / .milliseconds(1)) } ?? 0
                    say("\(worker(tally.runner(e.jobID, from: e))): \(tag) failed (\(e.failure?.reason ?? "error")), retrying in \(formatMs(delay))")
                case .failed:
                    tally.failed += 1
                    say("\(worker(tally.runner(e.jobID, from: e))): \(tag) failed for good: \(e.failure?.reason ?? "error")")
                case .cancelled:
                    tally.cancelled += 1
                    say("\(worker(tally.runner(e.jobID, from: e))): \(tag) cancelled (\(e.failure?.reason ?? "cancelled"))")
                default:
                    break
                }
                if case .active = e.kind { tally.runnerByJob[e.jobID] = e.workerID }
                if tally.finished == plan.jobs.count { break loop }
            }
        }
        ticker.cancel()
        for r in readers { r.cancel() }
        let elapsed = ContinuousClock.now - startedAt
        await printStatus(queues: queues, plan: plan, tally: tally, fleet: fleet)

        let workerRSS = fleet.pids.map { rssKiB($0) }
        let cancelledJobs = try await queues.values.asyncFlatMap { try await $0.inspector.jobs(state: .cancelled) }
        say("")
        say("summary")
        say("  total time       \(formatSeconds(elapsed))")
        say("  jobs created     \(plan.jobs.count)")
        say("  jobs finished    \(tally.finished) (completed \(tally.completed), failed \(tally.failed), cancelled \(tally.cancelled))")
        say("  retries          \(tally.retried)")
        say("  cancelled        \(tally.cancelled)" + cancelledJobs.map { " — \($0.name) \($0.id.suffix(6)): \($0.cancelReason ?? "")" }.joined())
        say(
            "  throughput       \(String(format: "%.1f", Double(tally.finished) / max(0.001, elapsed.seconds))) jobs/s over \(workers) workers × \(concurrency)"
        )
        say(
            "  memory           demo \(kib(rssKiB(getpid()))) (\(signedKiB(rssKiB(getpid()) - demoRSSBefore)) since start); workers "
                + workerRSS.map(kib).joined(separator: ", "))

        let codes = await fleet.stopWorkers()
        say("  workers stopped  " + codes.map { $0 == 0 ? "ok" : "exit \($0)" }.joined(separator: ", ") + " (SIGTERM, graceful)")
        if server == nil {
            for queue in queues.values { _ = try? await queue.inspector.obliterate(force: true) }
        }
        await client.close()
        if let server {
            await server.destroy()
            say("stopped the private redis-server")
        }
        let complete = tally.finished == plan.jobs.count && codes.allSatisfy { $0 == 0 }
        if !complete { throw ExitCode(1) }
    }

    enum Update: Sendable {
        case event(String, QueueEvent)
        case tick
        case readerFailed(String, String)
    }

    struct Tally {
        var completed = 0, failed = 0, cancelled = 0, retried = 0
        var started: [String: ContinuousClock.Instant] = [:]
        var runnerByJob: [String: String] = [:]
        var finished: Int { completed + failed + cancelled }

        func runner(_ id: String, from e: QueueEvent) -> String? { e.workerID ?? runnerByJob[id] }

        func elapsed(_ id: String) -> String {
            guard let start = started[id] else { return "?" }
            return formatMs(Int((ContinuousClock.now - start).seconds * 1000))
        }
    }

    func printStatus(queues: [String: JobQueue], plan: Plan, tally: Tally, fleet: Fleet) async {
        var parts: [String] = []
        for name in plan.queueNames {
            guard let c = try? await queues[name]?.inspector.counts() else { continue }
            parts.append("\(name.dropFirst(plan.prefix.count)) \(c.waiting)w/\(c.active)a/\(c.completed)c/\(c.failed)f")
        }
        let memory = "demo \(kib(rssKiB(getpid()))), workers " + fleet.pids.map { kib(rssKiB($0)) }.joined(separator: " ")
        say("── status: " + parts.joined(separator: "  ") + "  | retried \(tally.retried), cancelled \(tally.cancelled) | \(memory)")
    }

    func worker(_ id: String?) -> String {
        guard let id else { return "worker ?" }
        return id.hasPrefix("demo-w") ? "worker \(id.dropFirst(6))" : "worker \(id)"
    }

    func attemptNote(_ attempt: Int?) -> String {
        guard let n = attempt, n > 1 else { return "" }
        return ", attempt \(n)"
    }

    /// A binary built next to this one (`swift build` puts all products in one directory).
    static func siblingBinary(_ name: String) throws -> String {
        let own = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        let path = own.appendingPathComponent(name).path
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw ValidationError("\(path) is missing: build it first (swift build --product \(name)), or run scripts/demo")
        }
        return path
    }

    /// The URL the workers get in their environment (never on their command line).
    static func urlWithPassword(_ c: RedisConfiguration) -> String {
        switch c.endpoint {
        case .unix(let path): return "unix://\(path)"
        case .tcp(let host, let port):
            var auth = ""
            if let password = c.password { auth = "\(c.username ?? ""):\(password)@" } else if let user = c.username { auth = "\(user)@" }
            let encoded = auth.addingPercentEncoding(withAllowedCharacters: .urlUserAllowed.union(CharacterSet(charactersIn: ":@"))) ?? auth
            return "redis://\(encoded)\(host):\(port)/\(c.database)"
        }
    }
}

/// The five kinds of job, the queue each goes to and how long each takes.
enum Kind: String, CaseIterable, Sendable {
    case email, resize, sync, report, webhook

    var queue: String {
        switch self {
        case .email: "emails"
        case .resize: "media"
        case .sync: "sync"
        case .report, .webhook: "reports-webhooks"
        }
    }

    /// Of every 20 jobs.
    var share: Int {
        switch self {
        case .email: 5
        case .resize: 3
        case .sync: 4
        case .report: 2
        case .webhook: 6
        }
    }

    var durationMs: ClosedRange<Int> {
        switch self {
        case .email: 500...1500
        case .resize: 1000...3000
        case .sync: 200...1000
        case .report: 2000...5000
        case .webhook: 100...600
        }
    }
}

/// The run plan, all drawn from the seed.
struct Plan {
    struct PlannedJob {
        let kind: Kind
        let queue: String
        let durationMs: Int
        let failAttempts: Int

        var newJob: JobQueue.NewJob {
            var options = JobOptions()
            if kind == .webhook { options.backoff = .exponential(base: .seconds(1), max: .seconds(10)) }
            let payload = #"{"sleep_ms":\#(durationMs),"progress":\#(kind == .report),"fail_attempts":\#(failAttempts),"kind":"\#(kind.rawValue)"}"#
            return JobQueue.NewJob(name: kind.rawValue, payload: .json(payload), options: options)
        }
    }

    let prefix: String
    let jobs: [PlannedJob]
    /// The report cancelled at 50 %.
    let cancelIndex: Int?

    init(jobs count: Int, seed: UInt64, prefix: String) {
        self.prefix = prefix
        var rng = SplitMix64(seed: seed)
        var counts = Kind.allCases.map { ($0, count * $0.share / 20) }
        let rest = count - counts.map(\.1).reduce(0, +)
        if let w = counts.firstIndex(where: { $0.0 == .webhook }) { counts[w].1 += rest }
        var jobs: [PlannedJob] = []
        var cancelIndex: Int?
        for (kind, n) in counts {
            for _ in 0..<n {
                let duration = Int.random(in: kind.durationMs, using: &rng)
                let fails = kind == .webhook && Double.random(in: 0..<1, using: &rng) < 0.1 ? 1 : 0
                jobs.append(PlannedJob(kind: kind, queue: prefix + kind.queue, durationMs: duration, failAttempts: fails))
            }
        }
        // At least one webhook fails once and then succeeds, whatever the seed.
        if !jobs.contains(where: { $0.failAttempts > 0 }), let i = jobs.firstIndex(where: { $0.kind == .webhook }) {
            let j = jobs[i]
            jobs[i] = PlannedJob(kind: j.kind, queue: j.queue, durationMs: j.durationMs, failAttempts: 1)
        }
        // The report to cancel should still be running at 50%: make the first one long.
        if let i = jobs.firstIndex(where: { $0.kind == .report }) {
            let j = jobs[i]
            jobs[i] = PlannedJob(kind: j.kind, queue: j.queue, durationMs: max(j.durationMs, 4000), failAttempts: 0)
            cancelIndex = i
        }
        // Shuffled, keeping track of the report to cancel.
        var order = Array(jobs.indices)
        order.shuffle(using: &rng)
        self.jobs = order.map { jobs[$0] }
        self.cancelIndex = cancelIndex.flatMap { order.firstIndex(of: $0) }
    }

    var queueNames: [String] { ["emails", "media", "sync", "reports-webhooks"].map { prefix + $0 } }

    /// Per queue: the indices of its jobs, in plan order.
    var byQueue: [(String, [Int])] {
        queueNames.map { name in (name, jobs.indices.filter { jobs[$0].queue == name }) }
    }
}

/// The worker processes and the private server; stopped on every way out, Ctrl-C included.
final class Fleet: Sendable {
    private let processes = Mutex<[ChildProcess]>([])
    private let logs = Mutex<[String]>([])
    private let server: RedisServerProcess?
    private let sources = Mutex<[RetainedSource]>([])

    struct RetainedSource: @unchecked Sendable { let source: any DispatchSourceSignal }

    init(server: RedisServerProcess?) {
        self.server = server
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { [self] in
                Task {
                    _ = await self.stopWorkers()
                    if let server { await server.destroy() }
                    StandardStreams.out("\ninterrupted: stopped the workers and the private redis-server\n")
                    Foundation.exit(130)
                }
            }
            source.resume()
            sources.withLock { $0.append(RetainedSource(source: source)) }
        }
    }

    func stopSignals() {
        sources.withLock { list in
            for entry in list { entry.source.cancel() }
        }
    }

    var pids: [Int32] { processes.withLock { $0.map(\.pid) } }

    func startWorker(binary: String, arguments: [String], environment: [String: String]) throws {
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("jobq-demo-worker-\(UUID().uuidString.prefix(8)).log").path
        let process = try ChildProcess(executable: binary, arguments: arguments, environment: environment, outputPath: log)
        processes.withLock { $0.append(process) }
        logs.withLock { $0.append(log) }
    }

    /// SIGTERM to every worker, then their exit codes (SIGKILL after 20 s).
    func stopWorkers() async -> [Int32] {
        let all = processes.withLock { $0 }
        for p in all { p.signal(SIGTERM) }
        var codes: [Int32] = []
        for p in all {
            let killer = Task {
                try await Task.sleep(for: .seconds(20))
                p.signal(SIGKILL)
            }
            let status = await p.wait()
            killer.cancel()
            codes.append(WaitStatus(status).code)
        }
        let paths = logs.withLock { $0 }
        for (code, path) in zip(codes, paths) {
            if code != 0, let text = try? String(contentsOfFile: path, encoding: .utf8) {
                StandardStreams.err("worker log (\(path)):\n\(text.suffix(2000))\n")
            } else {
                try? FileManager.default.removeItem(atPath: path)
            }
        }
        return codes
    }
}

func say(_ line: String) {
    StandardStreams.out((line + "\n"))
}

/// Resident memory of a process, KiB (0 when it is gone).
func rssKiB(_ pid: Int32) -> Int {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
        let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") })
    else { return 0 }
    return Int(line.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first ?? "") ?? 0
}

func kib(_ v: Int) -> String { String(format: "%.1f MiB", Double(v) / 1024) }
func signedKiB(_ v: Int) -> String { (v >= 0 ? "+" : "−") + kib(abs(v)) }
func formatMs(_ ms: Int) -> String { ms < 1000 ? "\(ms) ms" : String(format: "%.1f s", Double(ms) / 1000) }
func formatSeconds(_ d: Duration) -> String { String(format: "%.1f s", d.seconds) }

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

extension Sequence where Element: Sendable {
    func asyncFlatMap<T>(_ transform: (Element) async throws -> [T]) async rethrows -> [T] {
        var out: [T] = []
        for element in self { out += try await transform(element) }
        return out
    }
}
