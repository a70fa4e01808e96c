import Foundation
import JobQ
import LocalRedis
import Synchronization

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
        /// Every connection over TLS: the server serves a TLS port only, with certificates made
        /// for the run; producers and workers verify it against the run's CA.
        var tls = false
        /// A concurrency cap of half the workers' slots and a rate limit on the queue, and half
        /// the jobs in groups with a group concurrency; the active set and each group's, sampled
        /// throughout, must never hold more than their caps.
        var limits = false
    }

    /// The groups `--limits` spreads half the jobs over, and each one's concurrency.
    static let groups = 4
    static let groupCap = 2

    /// The cap `--limits` sets: half of 8 slots per worker.
    var cap: Int { max(1, settings.workers * 4) }

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
        /// SIGSTOP of a worker for longer than its lease, then SIGCONT.
        case stop(pid: Int32, from: UInt64, to: UInt64)
        /// Redis full (maxmemory below used, noeviction): adds refused, everything else goes on.
        case oom(from: UInt64, to: UInt64)
    }

    let settings: Settings

    func run() async throws -> Outcome {
        let started = ContinuousClock.now
        let directory = try Self.makeDirectory()
        let log = try AppendLog(path: "\(directory)/orchestrator.log")
        var rng = SplitMix64(seed: settings.seed)
        var violations: [String] = []
        var faults: [Fault] = []

        var serverOptions = RedisServerProcess.Options(transport: .tcp, appendFsync: "always")
        if settings.tls {
            serverOptions.tls = .init(certificates: try await TestCertificates.make(in: "\(directory)/pki"))
        }
        let server = try await RedisServerProcess.start(serverOptions)
        defer { Task { await server.stop() } }
        var redis = server.configuration
        redis.retryDeadline = .seconds(30)
        let client = RedisClient(configuration: redis)
        let queue = "chaos-\(settings.seed)"
        let inspector = try QueueInspector(name: queue, client: client)
        // Keep every record, so the checker can read each job's end.
        try await inspector.setRetention(completed: 10_000_000, failed: 10_000_000, cancelled: 10_000_000)
        if settings.limits {
            try await inspector.setLimits(
                rate: .set(RateLimit(300, per: .seconds(1))), concurrency: .set(cap), groupConcurrency: .set(Self.groupCap))
        }
        // The active set, sampled every 10 ms on a connection of its own (bounded by the run).
        let sampling = CapSample()
        let sampler = Task { [cap] in
            let own = RedisClient(configuration: redis)
            defer { Task { await own.close() } }
            let keys = try QueueKeys(queue: queue)
            let groupSets = (0..<Self.groups).map { keys.groupPrefix + "a:g\($0)" }
            for _ in 0..<2_000_000 where !Task.isCancelled {
                if let n = try? await own.send("ZCARD", keys.active).int { sampling.record(n, cap: cap) }
                if settings.limits {
                    for key in groupSets { if let n = try? await own.send("SCARD", key).int { sampling.recordGroup(n) } }
                }
                try? await Task.sleep(for: .milliseconds(10))
            }
        }
        log.write("start", queue, server.url, String(settings.seed), String(monotonicNanos()))

        let binary = Self.ownPath()
        // The workers' TMPDIR is the run's own, so their exec scratch directories can be counted.
        let scratch = "\(directory)/tmp"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        var environment = ["PATH": "/usr/local/bin:/usr/bin:/bin"]
        // A Lua directory override (a mutated copy, to prove the checks catch a broken script)
        // reaches every role.
        if let lua = ProcessInfo.processInfo.environment["JOBQ_LUA_DIR"] { environment["JOBQ_LUA_DIR"] = lua }
        if let tls = serverOptions.tls { environment["JOBQ_REDIS_TLS_CA_FILE"] = tls.certificates.caFile }
        // Workers also serve a side queue where job ids are obliterated and re-added mid-run.
        let reuseQueue = try JobQueue(name: queue + "-reuse", client: client)
        // And a queue with a 1-second schedule that every worker advances, through every fault:
        // each tick must become one job (checked after the run).
        let ticks = try JobQueue(name: queue + "-ticks", client: client)
        try await ticks.inspector.setRetention(completed: 10_000_000, failed: 10_000_000, cancelled: 10_000_000)
        try await ticks.upsertSchedule(id: "beat", .every(.seconds(1)), job: .init(name: "tick", payload: .json("{}")))
        func spawnWorker(queues: [String] = [queue, queue + "-reuse", queue + "-ticks"]) throws -> ChildProcess {
            try ChildProcess(
                executable: binary, arguments: ["work", "--redis-url", server.url, "--directory", directory] + queues.flatMap { ["--queue", $0] },
                environment: environment.merging(["TMPDIR": scratch]) { $1 }, outputPath: "\(directory)/workers.out")
        }
        var workers: [ChildProcess] = try (0..<settings.workers).map { _ in try spawnWorker() }
        for w in workers { log.write("spawn", String(w.pid), String(monotonicNanos())) }
        let ready = ContinuousClock.now + .seconds(60)
        while try await WorkerInfo.list(client: client, queue: queue).count < settings.workers {
            guard ContinuousClock.now < ready else {
                throw ChaosError("the \(settings.workers) workers did not all start within 60 s (see \(directory)/workers.out)")
            }
            try await Task.sleep(for: .milliseconds(50))
        }

        let perProducer = [settings.jobs / 2, settings.jobs - settings.jobs / 2]
        let producers = try perProducer.enumerated().map { index, count in
            try ChildProcess(
                executable: binary,
                arguments: [
                    "produce", "--redis-url", server.url, "--queue", queue, "--directory", directory,
                    "--index", String(index), "--count", String(count), "--seconds", String(settings.seconds),
                    "--seed", String(settings.seed), "--groups", String(settings.limits ? Self.groups : 0),
                ],
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
        let reuseAt = ContinuousClock.now + .seconds(settings.seconds * 0.15)
        var reused = false
        let stopAt = ContinuousClock.now + .seconds(settings.seconds * 0.25)
        let restartAt = ContinuousClock.now + .seconds(settings.seconds * 0.4)
        let oomAt = ContinuousClock.now + .seconds(settings.seconds * 0.55)
        let sigtermAt = ContinuousClock.now + .seconds(settings.seconds * 0.7)
        let bulkAt = ContinuousClock.now + .seconds(settings.seconds * 0.85)
        var restarted = false
        var termed = false
        var stopped = false
        var filled = false
        var bulked = false
        let bulkLog = try AppendLog(path: "\(directory)/producer-bulk.log")
        let jobs = try JobQueue(name: queue, client: client)
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
                if WaitStatus(status).signal != SIGKILL {
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
            if !reused, now >= reuseAt {
                // Ids reused while their old runs are in flight: `obliterate --force`, then the same
                // ids added again. Each new job must end once, completed, with no stall: an old
                // run's end must never touch the new run of the same id.
                reused = true
                violations += try await Self.reusePhase(reuseQueue, log: log)
            }
            if !stopped, now >= stopAt {
                // A worker frozen past its lease (a GC pause, a stopped VM): its jobs are reaped
                // and run elsewhere; thawed, it must fence itself and write nothing stale.
                stopped = true
                let victim = workers[Int.random(in: 0..<workers.count, using: &rng)]
                let from = monotonicNanos()
                victim.signal(SIGSTOP)
                try await Task.sleep(for: .milliseconds(6_500))  // > 2 leases of 3 s
                victim.signal(SIGCONT)
                let to = monotonicNanos()
                log.write("stop", String(victim.pid), String(from), String(to))
                faults.append(.stop(pid: victim.pid, from: from, to: to))
            }
            if !filled, now >= oomAt {
                // Redis full for longer than a lease, with long jobs running: renewals, reaping,
                // heartbeats and finishing must go on; only adds are refused.
                filled = true
                let used =
                    Int(
                        try await client.send("INFO", "memory").string?.split(separator: "\r\n")
                            .first { $0.hasPrefix("used_memory:") }?.dropFirst(12) ?? "0") ?? 0
                let from = monotonicNanos()
                _ = try await client.send("CONFIG", "SET", "maxmemory", String(max(1, used - 256 * 1024)))
                try await Task.sleep(for: .milliseconds(4_500))
                _ = try await client.send("CONFIG", "SET", "maxmemory", "0")
                let to = monotonicNanos()
                log.write("oom", String(from), String(to), String(used))
                faults.append(.oom(from: from, to: to))
            }
            if !bulked, now >= bulkAt {
                // A bulk cancel racing the workers: 200 jobs added and cancelled in one call.
                bulked = true
                let payload = try JobPayload.encoding(ChaosPayload(k: .bulkCancel, ms: 300))
                var options = JobOptions()
                options.maxStalls = 1000
                let added = try await jobs.addBulk((0..<200).map { _ in .init(name: "chaos", payload: payload, options: options) })
                var ids: [String] = []
                for result in added {
                    if case .success(let a) = result {
                        ids.append(a.id)
                        bulkLog.write("added", a.id, ChaosPayload.Kind.bulkCancel.rawValue, String(monotonicNanos()))
                    } else {
                        bulkLog.write("unacked", ChaosPayload.Kind.bulkCancel.rawValue, "bulk add refused")
                    }
                }
                for _ in 0..<100 {
                    do {
                        let outcomes = try await jobs.cancel(ids, requestedBy: "chaos-bulk")
                        let t = monotonicNanos()
                        let wall = UInt64(Date().timeIntervalSince1970 * 1000)
                        for (id, outcome) in zip(ids, outcomes) {
                            let name: String =
                                switch outcome {
                                case .cancelled: "cancelled"
                                case .cancelRequested: "cancelRequested"
                                case .alreadyFinished(let state): "already-\(state)"
                                case .notFound: "notFound"
                                }
                            bulkLog.write("cancel", id, name, String(t), String(wall))
                        }
                        break
                    } catch {
                        try await Task.sleep(for: .milliseconds(100))
                    }
                }
                log.write("bulkCancel", String(ids.count))
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
                // No program a gracefully stopped worker started may outlive it.
                violations += Self.survivors(of: Set(signalled.map(\.0.pid)), directory: directory)
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
        violations += Self.survivors(of: Set(workers.map(\.pid)), directory: directory)
        // Scratch files: a stopping worker removes its own; those of killed workers are removed
        // by the next worker that runs an exec job. One more worker runs one, then nothing of
        // any worker may be left.
        let sweepQueue = try JobQueue(name: queue + "-sweep", client: client)
        let sweepJob = try await sweepQueue.add(name: "chaos", payload: try .encoding(ChaosPayload(k: .stubborn, ms: 0))).id
        let sweeper = try spawnWorker(queues: [sweepQueue.name])
        let sweepDeadline = ContinuousClock.now + .seconds(60)
        while try await sweepQueue.inspector.job(sweepJob)?.state != .completed {
            guard ContinuousClock.now < sweepDeadline else {
                violations.append("the sweeping worker did not run its job within 60 s")
                break
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        sweeper.signal(SIGTERM)
        _ = try await Self.wait(sweeper, seconds: 60, what: "the sweeping worker")
        let left = (try? FileManager.default.contentsOfDirectory(atPath: scratch)) ?? []
        if !left.isEmpty { violations.append("exec scratch files left behind in \(scratch): \(left.prefix(5).joined(separator: ", "))") }
        _ = try? await sweepQueue.inspector.obliterate(force: true)
        _ = try? await reuseQueue.inspector.obliterate(force: true)
        sampler.cancel()
        _ = await sampler.result
        log.write("end", String(monotonicNanos()))
        if settings.limits, sampling.most > cap {
            violations.append("the active set held \(sampling.most) jobs at once; the concurrency cap is \(cap)")
        }
        if settings.limits, sampling.mostInGroup > Self.groupCap {
            violations.append("a group's active set held \(sampling.mostInGroup) jobs at once; the group concurrency is \(Self.groupCap)")
        }

        if settings.sabotage, let victim = try await client.send("ZRANGE", "jobq:{\(queue)}:completed", "0", "0").array?.first?.string {
            let keys = try QueueKeys(queue: queue)
            _ = try await client.pipeline([RedisCommand("ZREM", keys.completed, victim), RedisCommand("DEL", keys.job(victim))])
            log.write("sabotage", victim)
        }
        let tickReport = try await Self.checkTicks(ticks, directory: directory)
        violations += tickReport.violations
        var checker = ChaosChecker(directory: directory, queue: queue, client: client, faults: faults)
        let report = try await checker.check()
        violations += report.violations
        await client.close()
        let seconds = Int((ContinuousClock.now - started).components.seconds)
        let kills = faults.filter {
            if case .kill = $0 { return true }
            return false
        }.count
        let sigterms = faults.filter {
            if case .sigterm = $0 { return true }
            return false
        }.count
        let cuts = faults.filter {
            if case .cut = $0 { return true }
            return false
        }.count
        let summary =
            "jobq-chaos: jobs=\(report.acknowledged) unacked=\(report.unacknowledged) completed=\(report.completed) failed=\(report.failed) "
            + "cancelled=\(report.cancelled) executions=\(report.executions) kills=\(kills) sigterms=\(sigterms) cuts=\(cuts) redis_restarts=1 stops=1 oom_windows=1 bulk_cancels=1 "
            + "lost=\(report.lost) duplicates=\(report.duplicates) violations=\(violations.count) tls=\(settings.tls ? "on" : "off") "
            + (settings.limits
                ? "cap=\(cap) most_active=\(sampling.most) group_cap=\(Self.groupCap) most_in_group=\(sampling.mostInGroup) " : "most_active=\(sampling.most) ")
            + "ticks=\(tickReport.made) ticks_skipped=\(tickReport.skipped) seed=\(settings.seed) \(seconds)s"
        return Outcome(summary: summary, violations: violations, directory: directory)
    }

    /// The schedule's ticks over the run: each made once (its `scheduled` event), consecutive
    /// unless a `skipped` event accounts for the gap, every run one of a made tick, and every
    /// tick made more than 20 s before the last one completed.
    static func checkTicks(_ queue: JobQueue, directory: String) async throws -> (made: Int, skipped: Int, violations: [String]) {
        var violations: [String] = []
        let rows = try await queue.client.send(RedisCommand("XRANGE", "jobq:{\(queue.name)}:events", "-", "+")).array ?? []
        var made: [String] = []
        var skips: [(Date, Date, Int)] = []
        for row in rows {
            guard let entry = row.array, entry.count == 2, let flat = entry[1].array, let event = QueueEvent(streamID: entry[0].string ?? "", flat: flat)
            else { continue }
            if event.kind == .scheduled { made.append(event.jobID) }
            if event.kind == .skipped, let s = event.skip { skips.append((s.first, s.last, s.count)) }
        }
        if Set(made).count != made.count { violations.append("ticks: a tick's job was made twice (\(made.count - Set(made).count) times)") }
        let format = ISO8601DateFormatter()
        let times = Set(made).compactMap { format.date(from: String($0.split(separator: "@").last ?? "")) }.sorted()
        if times.count < 5 { violations.append("ticks: only \(times.count) ticks were made over the run") }
        for (a, b) in zip(times, times.dropFirst()) where b.timeIntervalSince(a) != 1 {
            let covered = skips.contains { $0.0 > a && $0.1 < b && Int(b.timeIntervalSince(a)) - 1 == $0.2 }
            if !covered { violations.append("ticks: none made between \(format.string(from: a)) and \(format.string(from: b)), and no skip says why") }
        }
        var ran = Set<String>()
        for file in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] where file.hasPrefix("ticks-") {
            let text = (try? String(contentsOfFile: "\(directory)/\(file)", encoding: .utf8)) ?? ""
            for line in text.split(separator: "\n") {
                let fields = line.split(separator: "\t")
                if fields.count >= 2 { ran.insert(String(fields[1])) }
            }
        }
        let strays = ran.subtracting(made)
        if !strays.isEmpty { violations.append("ticks: runs of jobs no tick made: \(strays.sorted().prefix(3).joined(separator: ", "))") }
        if let last = times.last {
            for id in Set(made) {
                guard let t = format.date(from: String(id.split(separator: "@").last ?? "")), t < last.addingTimeInterval(-20) else { continue }
                let state = try await queue.inspector.job(id)?.state
                if state != .completed { violations.append("ticks: \(id) made but \(state.map { "\($0)" } ?? "gone"), not completed") }
            }
        }
        return (Set(made).count, skips.reduce(0) { $0 + $1.2 }, violations)
    }

    /// 12 jobs with fixed ids on the side queue; once some run, the queue is obliterated and the
    /// same ids added again (runs longer than the lease); every re-added job must complete with 1
    /// attempt and no stall.
    static func reusePhase(_ queue: JobQueue, log: AppendLog) async throws -> [String] {
        let ids = (0..<12).map { "reuse-\($0)" }
        // Keep every record, so each re-added job's end can be read (obliterate resets it too).
        try await queue.inspector.setRetention(completed: 1_000, failed: 1_000, cancelled: 1_000)
        var options = JobOptions()
        options.maxStalls = 1000
        let long = try JobPayload.encoding(ChaosPayload(k: .plain, ms: 1_500))
        for id in ids {
            options.jobID = id
            _ = try await queue.add(name: "chaos", payload: long, options: options)
        }
        let deadline = ContinuousClock.now + .seconds(30)
        while try await queue.inspector.counts().active < 3 {
            guard ContinuousClock.now < deadline else { return ["reuse phase: the side queue's jobs did not start within 30 s"] }
            try await Task.sleep(for: .milliseconds(20))
        }
        _ = try await queue.inspector.obliterate(force: true)
        try await queue.inspector.setRetention(completed: 1_000, failed: 1_000, cancelled: 1_000)
        // Longer than the lease: a new run whose lease an old run's end dropped would be reaped.
        let again = try JobPayload.encoding(ChaosPayload(k: .plain, ms: 4_500))
        for id in ids {
            options.jobID = id
            _ = try await queue.add(name: "chaos", payload: again, options: options)
        }
        log.write("reuse", String(ids.count), String(monotonicNanos()))
        while true {
            let counts = try await queue.inspector.counts()
            if counts.waiting + counts.delayed + counts.active == 0 { break }
            guard ContinuousClock.now < deadline + .seconds(30) else { return ["reuse phase: re-added jobs still running after 60 s: \(counts)"] }
            try await Task.sleep(for: .milliseconds(50))
        }
        var problems: [String] = []
        for id in ids {
            guard let job = try await queue.inspector.job(id) else {
                problems.append("reuse phase: \(id) is gone")
                continue
            }
            if job.state != .completed || job.stallCount != 0 || job.attemptsMade != 1 {
                problems.append(
                    "reuse phase: \(id) ended \(job.state) with \(job.stallCount) stalls and \(job.attemptsMade) attempts (expected completed, 0, 1): an old run touched the new one"
                )
            }
        }
        return problems
    }

    /// Programs (from `stubborn.pids`) started by one of `workers` that still run.
    static func survivors(of workers: Set<Int32>, directory: String) -> [String] {
        guard let text = try? String(contentsOfFile: "\(directory)/stubborn.pids", encoding: .utf8) else { return [] }
        var out: [String] = []
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ").compactMap { Int32($0) }
            guard parts.count == 2, workers.contains(parts[1]) else { continue }
            if kill(parts[0], 0) == 0 {
                out.append("exec program \(parts[0]) of stopped worker \(parts[1]) outlived it")
                kill(parts[0], SIGKILL)
            }
        }
        return out
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
        WaitStatus(status).description
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

/// The most jobs the sampler saw active at once.
final class CapSample: Sendable {
    private let state = Mutex((most: 0, inGroup: 0))
    func record(_ n: Int, cap: Int) { state.withLock { $0.most = max($0.most, n) } }
    func recordGroup(_ n: Int) { state.withLock { $0.inGroup = max($0.inGroup, n) } }
    var most: Int { state.withLock { $0.most } }
    /// The most jobs of one group the sampler saw active at once.
    var mostInGroup: Int { state.withLock { $0.inGroup } }
}
