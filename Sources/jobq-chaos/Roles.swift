import ArgumentParser
import Dispatch
import Foundation
import JobQ
import JobQWorkerKit
import LocalRedis
import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The system's monotonic clock in nanoseconds (libdispatch reads CLOCK_MONOTONIC): one clock
/// for every process on this machine, so the orchestrator can order its kills against the
/// workers' and producers' log lines.
func monotonicNanos() -> UInt64 {
    DispatchTime.now().uptimeNanoseconds
}

/// An append-only log of tab-separated lines, one `write(2)` per line (O_APPEND), so a line is
/// whole or absent even when the process is killed mid-run.
final class AppendLog: Sendable {
    private let fd: Int32

    init(path: String) throws {
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ValidationError("cannot open \(path): \(String(cString: strerror(errno)))") }
    }

    func write(_ fields: String...) {
        let line = Array((fields.joined(separator: "\t") + "\n").utf8)
        line.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    return
                }
                offset += n
            }
        }
    }

    deinit { close(fd) }
}

/// What a chaos job does, carried in its payload: `{"k":"plain","ms":40}`.
struct ChaosPayload: Codable {
    enum Kind: String, Codable, CaseIterable {
        case plain, delayed, prioritized
        /// Fails its first attempt, then succeeds.
        case failOnce
        /// Runs until cancelled (or 30 s); its producer cancels it once it is running.
        case cancel
        /// Runs longer than the lease (renewals must carry it, through the OOM window too).
        case long
        /// An `exec` program that ignores SIGTERM (only SIGKILL ends it early).
        case stubborn
        /// Added and cancelled in one bulk call by the orchestrator, racing the workers.
        case bulkCancel
    }
    var k: Kind
    var ms: Int
}

/// `jobq-chaos produce`: adds `count` jobs spread over `seconds`, logging every acknowledged add
/// (`added ID KIND T`) and every add that threw (`unacked KIND ERROR`); cancels each `cancel` job
/// once it runs and logs when `cancel()` returned (`cancel ID OUTCOME T WALL_MS`).
struct Produce: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "One producer of a chaos run (started by `jobq-chaos run`).", shouldDisplay: false)

    @Option var redisURL: String
    @Option var queue: String
    @Option var directory: String
    @Option var index: Int
    @Option var count: Int
    @Option var seconds: Double
    @Option var seed: UInt64
    @Option(help: "Put every other job in one of this many groups (g0, g1, …); 0: none.") var groups = 0

    func run() async throws {
        let log = try AppendLog(path: "\(directory)/producer-\(index).log")
        var configuration = try RedisConfiguration(url: redisURL)
        try configuration.applyTLS(try RedisTLSOptions().fillingIn(from: ProcessInfo.processInfo.environment))
        configuration.retryDeadline = .seconds(30)
        let client = RedisClient(configuration: configuration)
        let jobs = try JobQueue(name: queue, client: client)
        var rng = SplitMix64(seed: seed &+ UInt64(index) &* 7919)
        let start = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { cancellers in
            for i in 0..<count {
                let due = start + .seconds(seconds * Double(i) / Double(max(1, count)))
                if due > ContinuousClock.now { try await Task.sleep(until: due, clock: .continuous) }
                let roll = Int.random(in: 0..<100, using: &rng)
                let kind: ChaosPayload.Kind =
                    roll < 5
                    ? .cancel
                    : roll < 15
                        ? .failOnce
                        : roll < 30
                            ? .delayed
                            : roll < 45
                                ? .prioritized
                                : roll < 48 ? .long : roll < 53 ? .stubborn : .plain
                var options = JobOptions()
                options.attempts = 3
                options.backoff = .fixed(.milliseconds(200))
                options.maxStalls = 1000  // stalls come from our own kills; count them, never fail a job for them
                if kind == .delayed { options.delay = .milliseconds(Int64.random(in: 100...2_000, using: &rng)) }
                if kind == .prioritized { options.priority = JobPriority(Int.random(in: -10...10, using: &rng)) }
                if groups > 0, Bool.random(using: &rng) { options.group = "g\(Int.random(in: 0..<groups, using: &rng))" }
                let ms =
                    kind == .cancel
                    ? 30_000
                    : kind == .long
                        ? Int.random(in: 4_000...5_000, using: &rng)
                        : kind == .stubborn ? Int.random(in: 100...1_500, using: &rng) : Int.random(in: 5...150, using: &rng)
                let payload = ChaosPayload(k: kind, ms: ms)
                do {
                    let added = try await jobs.add(name: "chaos", payload: try .encoding(payload), options: options)
                    log.write("added", added.id, kind.rawValue, String(monotonicNanos()))
                    if kind == .cancel {
                        let id = added.id
                        cancellers.addTask { try await Self.cancelWhenRunning(id, jobs: jobs, log: log) }
                    }
                } catch {
                    log.write("unacked", kind.rawValue, "\(error)".replacingOccurrences(of: "\n", with: " "))
                }
            }
            try await cancellers.waitForAll()
        }
        await client.close()
    }

    /// Waits (bounded) until the job runs, then cancels it; a cancel that throws (Redis down) is
    /// tried again until it returns.
    static func cancelWhenRunning(_ id: String, jobs: JobQueue, log: AppendLog) async throws {
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            if let job = try? await jobs.inspector.job(id), job.state != .waiting && job.state != .delayed { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        while ContinuousClock.now < deadline + .seconds(60) {
            do {
                let outcome = try await jobs.cancel(id)
                let name: String
                switch outcome {
                case .cancelled: name = "cancelled"
                case .cancelRequested: name = "cancelRequested"
                case .alreadyFinished(let state): name = "already-\(state)"
                case .notFound: name = "notFound"
                }
                log.write("cancel", id, name, String(monotonicNanos()), String(UInt64(Date().timeIntervalSince1970 * 1000)))
                return
            } catch {
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        log.write("cancelGaveUp", id)
    }
}

/// `jobq-chaos work`: one worker process. Every handler run is logged before anything else
/// (`start ID ATTEMPT EXECUTION PID T`) and at its end (`end ID ATTEMPT EXECUTION OUTCOME T`);
/// a completed run's result is its execution id, so the checker can tell which run's result
/// Redis kept. SIGTERM stops it gracefully (exit 0).
struct Work: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "One worker of a chaos run (started by `jobq-chaos run`).", shouldDisplay: false)

    @Option var redisURL: String
    @Option(help: "A queue to serve (repeatable).") var queue: [String]
    @Option var directory: String
    @Option var concurrency = 8
    @Option(help: "Lease in milliseconds.") var leaseMs = 3_000
    @Option(help: "Shutdown grace in milliseconds.") var graceMs = 2_000

    struct PlannedFailure: Error, CustomStringConvertible {
        var description: String { "planned failure of the first attempt" }
    }

    func run() async throws {
        // SIGTERM is ours to handle from the start: it stops the worker gracefully.
        signal(SIGTERM, SIG_IGN)
        let pid = String(getpid())
        let log = try AppendLog(path: "\(directory)/worker-\(pid).log")
        // The stubborn program: records its pid and its worker's, ignores SIGTERM, runs the
        // payload's ms in 50 ms steps and returns its execution id as the result.
        var stubborn = ExecHandler(
            executable: "/bin/sh",
            arguments: [
                "-c",
                """
                echo "$$ $PPID" >> '\(directory)/stubborn.pids'
                trap '' TERM
                ms=$(sed -n 's/.*"ms":\\([0-9]*\\).*/\\1/p')
                i=0; while [ $i -lt $((ms / 50)) ]; do sleep 0.05; i=$((i + 1)); done
                printf 'result %s\\n' "$(printf %s "$JOBQ_EXECUTION_ID" | base64 | tr -d '\\n')" >&3
                """,
            ])
        stubborn.killAfter = .seconds(1)
        let stubbornRun = stubborn.handler
        var handlers = JobHandlers()
        handlers.stopsExecPrograms()
        handlers.register(name: "chaos") { job, context in
            log.write("start", job.id, String(context.attempt), context.executionID, pid, String(monotonicNanos()))
            func end(_ outcome: String) { log.write("end", job.id, String(context.attempt), context.executionID, outcome, String(monotonicNanos())) }
            let payload = try job.payload.decode(ChaosPayload.self)
            if payload.k == .failOnce, context.attempt == 1 {
                end("failed")
                throw PlannedFailure()
            }
            do {
                if payload.k == .stubborn {
                    let result = try await stubbornRun(job, context)
                    end("ok")
                    return result
                }
                if payload.k == .cancel {
                    _ = try await withThrowingTaskGroup(of: Bool.self) { group in
                        group.addTask { await context.waitForCancellation() != nil }
                        group.addTask {
                            try await Task.sleep(for: .milliseconds(payload.ms))
                            return false
                        }
                        defer { group.cancelAll() }
                        return try await group.next() ?? false
                    }
                    try context.checkCancellation()
                } else {
                    try await Task.sleep(for: .milliseconds(payload.ms))
                    try context.checkCancellation()
                }
            } catch {
                end("stopped")
                throw error
            }
            end("ok")
            return Array(context.executionID.utf8)
        }
        // The ticks of the run's schedule: each run logged outside Redis.
        let tickLog = try AppendLog(path: "\(directory)/ticks-\(pid).log")
        handlers.register(name: "tick") { job, context in
            tickLog.write("tick", job.id, String(context.attempt), pid, String(monotonicNanos()))
            return []
        }
        // For the starved-pool test: a careless handler that blocks its pool thread for the
        // payload's ms (`{"ms": 3000}`) instead of awaiting.
        handlers.register(name: "block") { job, _ in
            let payload = try job.payload.decode(ChaosPayload.self)
            usleep(UInt32(max(0, min(payload.ms, 60_000))) * 1000)
            return []
        }
        var configuration = WorkerConfiguration(queues: queue.map { .init($0) }, concurrency: concurrency, workerID: "chaos-\(pid)")
        configuration.lease = .milliseconds(leaseMs)
        configuration.shutdownGrace = .milliseconds(graceMs)
        configuration.maxBlockTimeout = .seconds(2)
        var redis = try RedisConfiguration(url: redisURL)
        try redis.applyTLS(try RedisTLSOptions().fillingIn(from: ProcessInfo.processInfo.environment))
        redis.retryDeadline = .seconds(30)
        var logger = Logger(label: "jobq-chaos.worker")
        logger.logLevel = .warning
        let client = RedisClient(configuration: redis)
        let worker = try Worker(client: client, configuration: configuration, handlers: handlers, logger: logger)
        let term = DispatchSource.makeSignalSource(signal: SIGTERM, queue: .global())
        term.setEventHandler { worker.shutdown() }
        term.resume()
        try await worker.run()
        term.cancel()
        await client.close()
    }
}
