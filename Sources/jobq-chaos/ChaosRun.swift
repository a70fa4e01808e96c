import Foundation
import JobQ
import LocalRedis
#if canImport(Glibc)
import Glibc
#endif

/// The orchestrator of one chaos run: the server, the processes, the schedule of faults, and
/// the log of what it did (`orchestrator.log`), which the checker matches against the others.
struct ChaosRun {
    struct Settings {
        var jobs: Int
        var seconds: Double
        var seed: UInt64
        var workers: Int
        /// Deletes one completed job behind jobq's back before the check, to prove the checker
        /// catches a lost job (used by the test of the checker itself).
        var sabotage = false
    }

    struct Outcome {
        var summary: String
        var violations: [String]
        var directory: String
    }

    /// A fault we caused, at a CLOCK_MONOTONIC time.
    enum Fault {
        case kill(pid: Int32, at: UInt64)
        case sigterm(pid: Int32, at: UInt64)
        case cut(type: String, at: UInt64)
        case redisRestart(from: UInt64, to: UInt64)
    }

    let settings: Settings

    func run() async throws -> Outcome {
        let started = ContinuousClock.now
        let directory = try Self.makeDirectory()
        let log = try AppendLog(path: "\(directory)/orchestrator.log")
        var rng = SplitMix64(seed: settings.seed)
        var violations: [String] = []
        var faults: [Fault] = []

        let server = try await RedisServerProcess.start(.init(transport: .tcp, appendFsync: "always"))
        defer { Task { await server.stop() } }
        var redis = server.configuration
        redis.retryDeadline = .seconds(30)
        let client = RedisClient(configuration: redis)
        let queue = "chaos-\(settings.seed)"
        let inspector = try QueueInspector(name: queue, client: client)
        // Keep every record, so the checker can read each job's end.
        try await inspector.setRetention(completed: 10_000_000, failed: 10_000_000, cancelled: 10_000_000)
        log.write("start", queue, server.url, String(settings.seed), String(monotonicNanos()))

        let binary = Self.ownPath()
        let environment = ["PATH": "/usr/local/bin:/usr/bin:/bin"]
        func spawnWorker() throws -> ChildProcess {
            try ChildProcess(executable: binary, arguments: ["work", "--redis-url", server.url, "--queue", queue, "--directory", directory],
                             environment: environment, outputPath: "\(directory)/workers.out")
        }
        var workers: [ChildProcess] = try (0..<settings.workers).map { _ in try spawnWorker() }
        for w in workers { log.write("spawn", String(w.pid), String(monotonicNanos())) }
        let ready = ContinuousClock.now + .seconds(60)
        while try await WorkerInfo.list(client: client, queue: queue).count < settings.workers {
            guard ContinuousClock.now < ready else { throw ChaosError("the \(settings.workers) workers did not all start within 60 s (see \(directory)/workers.out)") }
            try await Task.sleep(for: .milliseconds(50))
        }

        let perProducer = [settings.jobs / 2, settings.jobs - settings.jobs / 2]
        let producers = try perProducer.enumerated().map { index, count in
            try ChildProcess(executable: binary, arguments: ["produce", "--redis-url", server.url, "--queue", queue, "--directory", directory,
                                                             "--index", String(index), "--count", String(count), "--seconds", String(settings.seconds),
                                                             "--seed", String(settings.seed)],
                             environment: environment, outputPath: "\(directory)/producers.out")
        }

        /// Waits until every current worker has registered (its heartbeat is in Redis): a worker
        /// still starting up would die of a SIGTERM before it could handle it.
        func waitReady() async throws {
            let deadline = ContinuousClock.now + .seconds(60)
            while true {
                let ids = Set(try await WorkerInfo.list(client: client, queue: queue).map(\.id))
                if workers.allSatisfy({ ids.contains("chaos-\($0.pid)") }) { return }
                guard ContinuousClock.now < deadline else { throw ChaosError("workers did not register within 60 s (see \(directory)/workers.out)") }
                try await Task.sleep(for: .milliseconds(50))
            }
        }

        /// Restarts any worker that exited without a signal of ours: that is a violation.
        func reapUnexpected() throws {
            for (i, w) in workers.enumerated() where w.hasExited {
                violations.append("worker \(w.pid) exited by itself (\(Self.describe(status: w.exitStatus ?? 0))); see \(directory)/workers.out")
                workers[i] = try spawnWorker()
                log.write("spawn", String(workers[i].pid), String(monotonicNanos()))
            }
        }

        // The faults, until the producers are done and the chaos time is over.
        let chaosEnd = ContinuousClock.now + .seconds(settings.seconds + 3)
        var nextKill = ContinuousClock.now + .milliseconds(Int64.random(in: 1_000...3_000, using: &rng))
        var nextCut = ContinuousClock.now + .milliseconds(Int64.random(in: 1_000...4_000, using: &rng))
        let restartAt = ContinuousClock.now + .seconds(settings.seconds * 0.4)
        let sigtermAt = ContinuousClock.now + .seconds(settings.seconds * 0.7)
        var restarted = false, termed = false
        while ContinuousClock.now < chaosEnd {
            try await Task.sleep(for: .milliseconds(50))
            try reapUnexpected()
            let now = ContinuousClock.now
            if now >= nextKill {
                let slot = Int.random(in: 0..<workers.count, using: &rng)
                let victim = workers[slot]
                let t = monotonicNanos()
                victim.signal(SIGKILL)
                let status = await victim.wait()
                log.write("kill", String(victim.pid), String(t))
                faults.append(.kill(pid: victim.pid, at: t))
                if !(status & 0x7f == SIGKILL) {
                    violations.append("worker \(victim.pid) ended with \(Self.describe(status: status)) before our SIGKILL reached it")
                }
                workers[slot] = try spawnWorker()
                log.write("spawn", String(workers[slot].pid), String(monotonicNanos()))
                nextKill = ContinuousClock.now + .milliseconds(Int64.random(in: 1_000...3_000, using: &rng))
            }
            if now >= nextCut {
                let type = Bool.random(using: &rng) ? "normal" : "pubsub"
                let t = monotonicNanos()
                let killed = (try? await client.send("CLIENT", "KILL", "TYPE", type, "SKIPME", "yes"))?.int ?? -1
                log.write("cut", type, String(killed), String(t))
                faults.append(.cut(type: type, at: t))
                nextCut = ContinuousClock.now + .milliseconds(Int64.random(in: 1_000...4_000, using: &rng))
            }
            if !restarted, now >= restartAt {
                restarted = true
                let from = monotonicNanos()
                await server.stop()
                try await server.restart()
                let to = monotonicNanos()
                log.write("redisRestart", String(from), String(to))
                faults.append(.redisRestart(from: from, to: to))
            }
            if !termed, now >= sigtermAt {
                termed = true
                try await waitReady()
                var signalled: [(ChildProcess, UInt64)] = []
                for w in workers {
                    let t = monotonicNanos()
                    w.signal(SIGTERM)
                    signalled.append((w, t))
                }
                for (w, t) in signalled {
                    let status = await w.wait()
                    log.write("sigterm", String(w.pid), String(t), String(status))
                    faults.append(.sigterm(pid: w.pid, at: t))
                    if status != 0 { violations.append("worker \(w.pid) did not stop cleanly on SIGTERM: \(Self.describe(status: status))") }
                }
                workers = try workers.map { _ in try spawnWorker() }
                for w in workers { log.write("spawn", String(w.pid), String(monotonicNanos())) }
            }
        }

        // The producers end on their own (bounded: their pace plus retries).
        for p in producers {
            let status = try await Self.wait(p, seconds: 180, what: "a producer")
            if status != 0 { violations.append("producer \(p.pid) exited with \(Self.describe(status: status)); see \(directory)/producers.out") }
        }

        // Quiet: no more faults; every job runs to its end (leases bring back the last kill's jobs).
        let quiet = ContinuousClock.now + .seconds(180)
        while true {
            try reapUnexpected()
            let c = try await inspector.counts()
            if c.waiting + c.delayed + c.active == 0 { break }
            guard ContinuousClock.now < quiet else {
                violations.append("jobs still not ended 180 s after the chaos: \(c.waiting) waiting, \(c.delayed) delayed, \(c.active) active")
                break
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        try await waitReady()
        for w in workers { w.signal(SIGTERM) }
        for w in workers {
            let status = try await Self.wait(w, seconds: 60, what: "a worker's graceful stop")
            if status != 0 { violations.append("worker \(w.pid) did not stop cleanly at the end: \(Self.describe(status: status))") }
        }
        log.write("end", String(monotonicNanos()))

        if settings.sabotage, let victim = try await client.send("ZRANGE", "jobq:{\(queue)}:completed", "0", "0").array?.first?.string {
            let keys = try QueueKeys(queue: queue)
            _ = try await client.pipeline([RedisCommand("ZREM", keys.completed, victim), RedisCommand("DEL", keys.job(victim))])
            log.write("sabotage", victim)
        }
        var checker = ChaosChecker(directory: directory, queue: queue, client: client, faults: faults)
        let report = try await checker.check()
        violations += report.violations
        await client.close()
        let seconds = Int((ContinuousClock.now - started).components.seconds)
        let kills = faults.filter { if case .kill = $0 { return true }; return false }.count
        let sigterms = faults.filter { if case .sigterm = $0 { return true }; return false }.count
        let cuts = faults.filter { if case .cut = $0 { return true }; return false }.count
        let summary = "jobq-chaos: jobs=\(report.acknowledged) unacked=\(report.unacknowledged) completed=\(report.completed) failed=\(report.failed) "
            + "cancelled=\(report.cancelled) executions=\(report.executions) kills=\(kills) sigterms=\(sigterms) cuts=\(cuts) redis_restarts=1 "
            + "lost=\(report.lost) duplicates=\(report.duplicates) violations=\(violations.count) seed=\(settings.seed) \(seconds)s"
        return Outcome(summary: summary, violations: violations, directory: directory)
    }

    static func wait(_ process: ChildProcess, seconds: Double, what: String) async throws -> Int32 {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while !process.hasExited {
            guard ContinuousClock.now < deadline else {
                process.signal(SIGKILL)
                throw ChaosError("timed out after \(Int(seconds)) s waiting for \(what) (pid \(process.pid)); it was killed")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        return await process.wait()
    }

    static func describe(status: Int32) -> String {
        status & 0x7f == 0 ? "exit code \((status >> 8) & 0xff)" : "signal \(status & 0x7f)"
    }

    static func makeDirectory() throws -> String {
        let root = ProcessInfo.processInfo.environment["JOBQ_TEST_TMPDIR"] ?? NSTemporaryDirectory()
        var template = Array((root.hasSuffix("/") ? root : root + "/").utf8CString.dropLast()) + Array("jobq-chaos-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw ChaosError("cannot create a directory under \(root)") }
        return String(cString: made)
    }

    /// This binary's absolute path (the roles are its own subcommands).
    static func ownPath() -> String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }
}

struct ChaosError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
