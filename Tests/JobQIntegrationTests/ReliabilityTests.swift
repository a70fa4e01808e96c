import Foundation
import JobQWorkerKit
import LocalRedis
import Logging
import Synchronization
import Testing

@testable import JobQ
@testable import JobQRedis

/// The guarantees just outside the paths the other suites walk: a stall never costs an attempt,
/// a full Redis never fails a job, runs are told apart by execution id, no program outlives its
/// worker, an outage costs a few log lines, and a warning about a lost lease means one was lost.
@Suite("Reliability: the guarantees outside the happy path", .awaitedTeardown)
struct ReliabilityTests {
    /// Waits until the job's lease deadline (its score in `active`) has moved forward `times`
    /// times: proof that renewals land. Fails (deadline) when they stop.
    static func waitForRenewals(_ queue: JobQueue, _ id: String, times: Int, within seconds: Double = 20) async throws {
        let seen = Mutex<(last: Double?, moves: Int)>((nil, 0))
        try await eventually(seconds, "\(times) lease renewals of \(id)") {
            let score = try await queue.client.send(RedisCommand("ZSCORE", queue.core.keys.active, id)).string.flatMap(Double.init)
            return seen.withLock { s in
                if let score, let last = s.last, score > last { s.moves += 1 }
                if let score { s.last = score }
                return s.moves >= times
            }
        }
    }

    @Test("a stall gives its attempt back: attempts 2, a stalled run and a failed one still leave a retry; attempts 1 never shows attempt 2")
    func stallKeepsAttempts() async throws {
        let queue = try await uniqueQueue()
        let two = try await queue.add(name: "s", payload: .json("{}"), options: .init(attempts: 2, backoff: .fixed(.zero)))
        // Run 1 stalls: its worker dies holding it (a lease of 1 ms that nobody renews).
        let (first, _) = try #require(try await queue.takeJob(JobQueue.testLease(.milliseconds(1))))
        #expect(first.attemptsMade == 1)
        try await eventually(20, "the reaper to requeue the stalled run") { try await queue.core.recoverStalled().requeued == 1 }
        var job = try #require(try await queue.inspector.job(two.id))
        #expect(job.state == .waiting && job.stallCount == 1 && job.attemptsMade == 0)
        // Run 2 is attempt 1 again, and its failure leaves attempt 2.
        let (second, lease) = try #require(try await queue.takeJob())
        #expect(second.attemptsMade == 1, "the handler sees JOBQ_ATTEMPT=1 after a stall")
        let end = try await queue.core.finish(two.id, token: lease.token, end: .failed(reason: "boom", details: "x", retryDelayMs: 0), next: nil)
        guard case .applied(.waiting, _) = end else {
            Issue.record("a failure after a stall must be retried: \(end)")
            return
        }
        let (third, lease3) = try #require(try await queue.takeJob())
        #expect(third.attemptsMade == 2)
        _ = try await queue.core.finish(two.id, token: lease3.token, end: .completed(result: []), next: nil)
        job = try #require(try await queue.inspector.job(two.id))
        #expect(job.state == .completed && job.attemptsMade == 2 && job.stallCount == 1)

        // attempts: 1 — a stall, then the retake is attempt 1 of 1, never "2 of 1".
        let one = try await queue.add(name: "s", payload: .json("{}"), options: .init(attempts: 1))
        _ = try #require(try await queue.takeJob(JobQueue.testLease(.milliseconds(1))))
        try await eventually(20, "the reaper to requeue the stalled run") { try await queue.core.recoverStalled().requeued == 1 }
        let (retaken, _) = try #require(try await queue.takeJob())
        #expect(retaken.id == one.id && retaken.attemptsMade == 1)
    }

    @Test("a full Redis (noeviction): renewals and heartbeats go on, a job longer than the lease completes without a stall")
    func outOfMemoryKeepsLeases() async throws {
        try await withPrivateRedis(.init(extraArguments: ["--maxmemory-policy", "noeviction"])) { server in
            let client = RedisClient(configuration: server.configuration)
            onTeardown { await client.close() }
            let queue = try JobQueue(name: "oom-leases", client: client)
            let latch = Latch()
            var handlers = JobHandlers()
            handlers.register(name: "long") { _, _ in
                await latch.wait()
                return Array("done".utf8)
            }
            handlers.register(name: "quick") { _, _ in [] }
            let logs = CapturedLogs()
            // A worker that died holding a job (its lease is expired below, while Redis is full).
            let orphan = try await queue.add(name: "quick", payload: .json("{}")).id
            _ = try #require(try await queue.takeJob(JobQueue.testLease(.seconds(600))))
            let id = try await queue.add(name: "long", payload: .json("{}")).id
            try await withWorker(queue, concurrency: 1, lease: .milliseconds(1200), logger: logs.logger(), handlers: handlers) { worker in
                try await eventually(20, "the job to run") { try await queue.inspector.job(id)?.state == .active }
                // Fill Redis past its limit: with noeviction, every write that may grow memory is refused.
                let blob = String(repeating: "z", count: 100_000)
                for i in 0..<10 { _ = try await client.send("SET", "filler:\(i)", blob) }
                let used = Int(try await client.info("memory", "used_memory") ?? "0") ?? 0
                _ = try await client.send("CONFIG", "SET", "maxmemory", String(used - 200_000))
                #expect(try await client.send("SET", "one-more", "x").errorCode == "OOM", "Redis is full")
                let beatBefore = try await client.send("ZSCORE", QueueKeys.workerRegistry, worker.configuration.workerID).string.flatMap(Double.init) ?? 0
                // The dead worker's lease runs out while Redis is full: the reaper still brings the job back.
                let expire = "#!lua flags=allow-oom\nreturn redis.call('ZADD', KEYS[1], 'XX', 0, ARGV[1])"
                _ = try await client.send(RedisCommand("EVAL", expire, 1, queue.core.keys.active, orphan))
                // Well past 5/6 of the lease (where a worker that cannot renew stops its own jobs).
                try await Self.waitForRenewals(queue, id, times: 6)
                let beatAfter = try await client.send("ZSCORE", QueueKeys.workerRegistry, worker.configuration.workerID).string.flatMap(Double.init) ?? 0
                #expect(beatAfter > beatBefore, "heartbeats land under OOM")
                #expect(try await WorkerInfo.list(client: client).contains { $0.id == worker.configuration.workerID })
                #expect(try await client.send("SET", "one-more", "x").errorCode == "OOM", "still full")
                try await eventually(20, "the dead worker's job reaped under OOM") {
                    let job = try await queue.inspector.job(orphan)
                    return job?.state == .waiting && job?.stallCount == 1
                }
                latch.open()
                try await eventually(20, "the reaped job to run") { try await queue.inspector.job(orphan)?.state == .completed }
                try await eventually(20, "the job to complete while Redis is full") { try await queue.inspector.job(id)?.state == .completed }
            }
            let job = try #require(try await queue.inspector.job(id))
            #expect(job.stallCount == 0 && job.attemptsMade == 1 && job.resultText == "done")
            #expect(!logs.contains(level: .warning, "lease lost"), "\(logs.all)")
            #expect(!logs.contains(level: .error, "not renewed"), "\(logs.all)")
        }
    }

    @Test("an old run's end never touches a newer run of the same id: obliterate --force and re-add while a run is in flight")
    func runsKeyedByExecution() async throws {
        let queue = try await uniqueQueue()
        let oldRun = Latch()
        let entered = Mutex(0)
        let cancelSeen = Mutex(false)
        var handlers = JobHandlers()
        handlers.register(name: "same") { _, context in
            let n = entered.withLock { n -> Int in
                n += 1
                return n
            }
            if n == 1 {
                await oldRun.wait()  // ignores its token; returns when the test says so
                return Array("stale".utf8)
            }
            _ = await context.waitForCancellation()
            cancelSeen.withLock { $0 = true }
            try context.checkCancellation()
            return []
        }
        let logs = CapturedLogs()
        _ = try await queue.add(name: "same", payload: .json("{}"), options: .init(jobID: "same-id"))
        // A long lease: renewals (every 20 s) stay out of the way; only the run bookkeeping is tested.
        try await withWorker(queue, concurrency: 2, lease: .seconds(60), logger: logs.logger(), handlers: handlers) { _ in
            try await eventually(20, "the first run") { entered.withLock { $0 } == 1 }
            _ = try await queue.inspector.obliterate(force: true)
            _ = try await queue.add(name: "same", payload: .json("{}"), options: .init(jobID: "same-id"))
            try await eventually(20, "the second run of the same id") { entered.withLock { $0 } == 2 }
            // The old run ends now: its finish is refused (another run holds the job) and it is forgotten.
            oldRun.open()
            try await eventually(20, "the old run's refused finish") { logs.contains(level: .warning, "lease lost before the result was stored") }
            // The new run is still known to its worker: a cancel reaches it at once.
            let outcome = try await queue.cancel("same-id")
            #expect(outcome == .cancelRequested(listeners: 1))
            try await eventually(20, "the new run to see its cancel") { cancelSeen.withLock { $0 } }
            try await eventually(20, "the job to end cancelled") { try await queue.inspector.job("same-id")?.state == .cancelled }
        }
        let job = try #require(try await queue.inspector.job("same-id"))
        #expect(job.stallCount == 0 && entered.withLock { $0 } == 2)
    }

    @Test("graceful shutdown: the worker does not exit while an exec program that ignores SIGTERM lives; no checkpoint file is left")
    func shutdownWaitsForChildren() async throws {
        let queue = try await uniqueQueue()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("jobq-reliability-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let pidFile = dir.appendingPathComponent("child.pid").path
        var exec = ExecHandler(
            executable: "/bin/sh",
            arguments: ["-c", "trap '' TERM; echo $$ > '\(pidFile)'; echo \"$JOBQ_JOB_CHECKPOINT_FILE\" >> '\(pidFile)'; while :; do sleep 0.05; done"])
        exec.killAfter = .milliseconds(1500)
        var handlers = JobHandlers()
        handlers.register(name: "stubborn", exec)
        let id = try await queue.add(name: "stubborn", payload: .json("{}")).id
        var childPID: pid_t = 0
        var checkpointFile = ""
        try await withWorker(queue, grace: .milliseconds(200), handlers: handlers) { _ in
            try await eventually(20, "the program to start") {
                let lines = (try? String(contentsOfFile: pidFile, encoding: .utf8))?.split(separator: "\n") ?? []
                return lines.count == 2
            }
            let lines = try String(contentsOfFile: pidFile, encoding: .utf8).split(separator: "\n")
            childPID = pid_t(lines[0]) ?? 0
            checkpointFile = String(lines[1])
            #expect(childPID > 0 && kill(childPID, 0) == 0)
            #expect(FileManager.default.fileExists(atPath: checkpointFile))
        }
        // withWorker returned: the worker's run() has ended. Its program must be gone (reaped).
        #expect(kill(childPID, 0) == -1 && errno == ESRCH, "the exec program outlived its worker")
        #expect(!FileManager.default.fileExists(atPath: checkpointFile), "checkpoint file left behind: \(checkpointFile)")
        let job = try #require(try await queue.inspector.job(id))
        #expect(job.state == .waiting && job.attemptsMade == 0, "requeued with no attempt used")
    }

    @Test("a Redis outage with running jobs: the upkeep services back off and log a few lines, not one per try; it says when Redis is back")
    func outageLogsOnce() async throws {
        try await withPrivateRedis { server in
            let client = RedisClient(configuration: server.configuration)
            onTeardown { await client.close() }
            let queue = try JobQueue(name: "outage-logs", client: client)
            var handlers = JobHandlers()
            handlers.registerUntilCancelled(name: "long")
            // One handler returns once Redis is down: its finish is retried through the outage,
            // so its run stays with the keeper (renewals keep trying) past the fence.
            let late = Latch()
            handlers.register(name: "late") { _, _ in
                await late.wait()
                return []
            }
            let logs = CapturedLogs()
            var ids: [String] = []
            for _ in 0..<4 { ids.append(try await queue.add(name: "long", payload: .json("{}")).id) }
            let lateID = try await queue.add(name: "late", payload: .json("{}")).id
            try await withWorker(queue, concurrency: 5, lease: .milliseconds(1200), logger: logs.logger(), handlers: handlers) { worker in
                try await eventually(20, "5 jobs running") { try await queue.inspector.counts().active == 5 }
                await server.stop()
                late.open()
                // The fence (5/6 of the lease without a renewal) stops each job: an event that
                // comes about a second into the outage, by which time a spinning keeper has
                // written thousands of lines.
                try await eventually(20, "the fence to stop all 4 jobs") { logs.count(level: .error, "not renewed") >= 4 }
                let keeperLines = logs.count(level: .debug, "worker upkeep")
                #expect(keeperLines >= 1 && keeperLines <= 6, "upkeep lines in the outage: \(keeperLines)\n\(logs.all.suffix(3000))")
                // Past the fence, with a run still to renew: the keeper retries on its backoff
                // (≥ 50 ms apart) and sleeps in between — a few wake-ups per try, never a spin.
                let before = worker.leaseKeeperCounts
                try await eventually(20, "8 more failed renewal tries") { worker.leaseKeeperCounts.failedRenewals >= before.failedRenewals + 8 }
                let after = worker.leaseKeeperCounts
                let perTry = Double(after.wakeups - before.wakeups) / Double(after.failedRenewals - before.failedRenewals)
                #expect(perTry < 10, "\(after.wakeups - before.wakeups) loop rounds for \(after.failedRenewals - before.failedRenewals) tries")
                try await server.restart()
                try await eventually(30, "the keeper to say Redis answers again") { logs.contains(level: .notice, "Redis answers again") }
                // The late run's finish went through once Redis was back (its lease was kept or the
                // reaper requeued it; either way it ends exactly once).
                try await eventually(30, "the late job to end") { try await queue.inspector.job(lateID)?.state != .active }
            }
        }
    }

    @Test("a worker with a short lease never drops a live worker with a long lease from the worker list")
    func registryKeepsLongLeases() async throws {
        let slowQueue = try await uniqueQueue("slowBeats")
        let fastQueue = try await uniqueQueue("fastBeats")
        let handlers = JobHandlers()
        try await withWorker(slowQueue, lease: .seconds(10), handlers: handlers) { slow in
            let slowID = slow.configuration.workerID
            try await eventually(20, "the slow worker's first beat") { try await WorkerInfo.list(client: slowQueue.client).contains { $0.id == slowID } }
            try await withWorker(fastQueue, lease: .milliseconds(300), handlers: handlers) { fast in
                // Five beats of the fast worker (every 100 ms): each trims the registry.
                let seen = Mutex<(last: Double?, moves: Int)>((nil, 0))
                try await eventually(20, "five beats of the fast worker") {
                    let score = try await fastQueue.client.send(RedisCommand("ZSCORE", QueueKeys.workerRegistry, fast.configuration.workerID)).string.flatMap(
                        Double.init)
                    return seen.withLock { s in
                        if let score, let last = s.last, score > last { s.moves += 1 }
                        if let score { s.last = score }
                        return s.moves >= 5
                    }
                }
                #expect(
                    try await WorkerInfo.list(client: slowQueue.client).contains { $0.id == slowID }, "the slow worker (a beat every 3.3 s) is still listed")
            }
        }
    }

    @Test("a lease-lost warning means a lease was lost: renewals racing finishing runs warn of none (1,000 short jobs, renewals every 100 ms)")
    func noFalseLeaseLost() async throws {
        let queue = try await uniqueQueue()
        let probe = Probe()
        var handlers = JobHandlers()
        handlers.register(name: "short") { job, _ in
            probe.enter(job.id)
            defer { probe.leave() }
            try await Task.sleep(for: .milliseconds(20))
            return []
        }
        let logs = CapturedLogs()
        let added = try await queue.addBulk((0..<1000).map { _ in .init(name: "short", payload: .json("{}")) })
        #expect(added.allSatisfy { (try? $0.get()) != nil })
        try await withWorker(queue, concurrency: 16, lease: .milliseconds(300), logger: logs.logger(), handlers: handlers) { _ in
            try await eventually(60, "1,000 jobs completed") {
                let counts = try await queue.inspector.counts()
                return probe.totalRuns >= 1000 && counts.active == 0 && counts.waiting == 0
            }
        }
        // A loaded machine may really let a 300 ms lease lapse: then the reaper requeued the job
        // (a `stalled` event) and the warning was true. A warning, or a second run, without a
        // stall behind it is the bug this test is for.
        let warned = logs.all.split(separator: "\n").filter { $0.contains("lease lost") }
            .compactMap { $0.firstMatch(of: /job=(\S+)/).map { String($0.1) } }
        for id in Set(warned + probe.repeated) {
            try await queue.expectEvents(.stalled, job: id, within: 10)
        }
        #expect(probe.jobs == 1000, "every job ran")
    }
}

/// The lease service runs on a thread of its own (a task executor), never on Swift's cooperative
/// pool: handlers that block every pool thread cannot make a lease lapse. The worker under test
/// is a child process (`jobq-chaos work`), so the pool it starves is its own, not the test
/// process's (whose other tests would stall with it).
@Suite("Reliability: leases under a starved pool", .awaitedTeardown)
struct StarvedPoolTests {
    @Test("a worker whose handlers block every cooperative pool thread for 3 lease lengths: renewals go on, no lease ever lapses, each job runs once")
    func renewalsSurviveABlockedPool() async throws {
        let queue = try await uniqueQueue()
        let server = try await SharedRedis.instance.server()
        // More jobs than the child has pool threads (2 per core is plenty), as many as its slots:
        // every job is taken by a fetcher, and the ones waiting for a pool thread must be renewed
        // all the same.
        let slots = max(2, ProcessInfo.processInfo.activeProcessorCount) * 2
        var ids: [String] = []
        for _ in 0..<slots { ids.append(try await queue.add(name: "block", payload: .json(#"{"k":"plain","ms":3000}"#)).id) }
        let directory = NSTemporaryDirectory() + "jobq-starve-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let binDir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
        let child = try ChildProcess(
            executable: binDir + "/jobq-chaos",
            arguments: [
                "work", "--redis-url", server.url, "--queue", queue.name, "--directory", directory, "--concurrency", String(slots),
                "--lease-ms", "1000",
            ],
            environment: ["PATH": "/usr/local/bin:/usr/bin:/bin"], outputPath: directory + "/out.log")
        onTeardown {
            if !child.hasExited { child.signal(SIGKILL) }
            _ = await child.wait()
            try? FileManager.default.removeItem(atPath: directory)
        }
        // From this process (its pool is free): every 50 ms, how many of the queue's leases are past
        // their deadline, until every job completed (bounded: 1,200 samples, a minute).
        let lapseCheck = "local t = redis.call('TIME') return redis.call('ZCOUNT', KEYS[1], '-inf', t[1] * 1000 + math.floor(t[2] / 1000))"
        var samples = 0
        var lapsed = 0
        var completed = 0
        for _ in 0..<1_200 {
            lapsed += try await queue.client.send("EVAL", lapseCheck, 1, queue.keys.active).int ?? 0
            samples += 1
            completed = try await queue.inspector.counts().completed
            if completed == slots || child.hasExited { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(completed == slots, "\((try? String(contentsOfFile: directory + "/out.log", encoding: .utf8)) ?? "")")
        #expect(samples >= 20, "the active set was sampled through the blocked window: \(samples)")
        #expect(lapsed == 0, "leases past their deadline while the child's pool was blocked: \(lapsed) in \(samples) samples")
        for id in ids {
            let kinds = try await queue.eventKinds(for: id)
            #expect(!kinds.contains("stalled"), "\(id): \(kinds)")
            #expect(try await queue.inspector.job(id)?.attemptsMade == 1)
        }
        child.signal(SIGTERM)
        #expect(WaitStatus(await child.wait()).code == 0)
    }
}

extension CapturedLogs {
    /// Lines at `level` or above containing `fragment`.
    func count(level: Logger.Level, _ fragment: String) -> Int {
        all.split(separator: "\n").filter { line in
            guard line.contains(fragment) else { return false }
            let name = line.prefix { $0 != " " }
            return (Logger.Level(rawValue: String(name)) ?? .trace) >= level
        }.count
    }
}

@Suite("Reliability: exec protocol checkpoints", .awaitedTeardown)
struct ExecCheckpointTests {
    @Test("checkpoints from fd 3 land in order and before the outcome; one over the limit or malformed is logged and noted in the output")
    func checkpointsInOrderAndRefusalsTraced() async throws {
        let queue = try await uniqueQueue()
        var handlers = JobHandlers()
        // 50 checkpoints in a burst, then one of 2,000 bytes (over this queue's 1,000), a
        // malformed one, and a failure so the captured output becomes the details.
        handlers.register(
            name: "burst",
            ExecHandlerTests.sh(
                """
                i=1; while [ $i -le 50 ]; do echo "checkpoint $(printf 'step-%d' $i | base64)" >&3; i=$((i+1)); done
                echo "checkpoint $(head -c 2000 /dev/zero | tr '\\0' 'x' | base64 | tr -d '\\n')" >&3
                echo "checkpoint !!!not-base64!!!" >&3
                exit 1
                """))
        let logs = CapturedLogs()
        let added = try await queue.add(name: "burst", payload: .json("{}"), options: .init(attempts: 1))
        try await withWorker(queue, configure: { $0.settings.maxCheckpointBytes = 1000 }, logger: logs.logger(), handlers: handlers) { _ in
            try await queue.expectEvents(.failed, job: added.id, within: 20)
        }
        let job = try #require(try await queue.inspector.job(added.id))
        #expect(job.checkpoint == Array("step-50".utf8), "the last good checkpoint, applied in order")
        let details = job.error?.details ?? ""
        #expect(details.contains("[jobq] checkpoint of 2000 bytes not saved"), "\(details)")
        #expect(details.contains("[jobq] malformed checkpoint line not saved"), "\(details)")
        #expect(logs.contains(level: .warning, "checkpoint from the program not saved"))
    }

    @Test("a protocol line over 4 MiB is dropped with a trace; the lines after it still count")
    func runawayLine() async throws {
        let queue = try await uniqueQueue()
        var handlers = JobHandlers()
        handlers.register(
            name: "runaway",
            ExecHandlerTests.sh(
                """
                head -c 5000000 /dev/zero | tr '\\0' 'a' >&3; echo >&3
                echo "checkpoint $(printf 'after' | base64)" >&3
                exit 1
                """))
        let added = try await queue.add(name: "runaway", payload: .json("{}"), options: .init(attempts: 1))
        try await withWorker(queue, handlers: handlers) { _ in
            try await queue.expectEvents(.failed, job: added.id, within: 30)
        }
        let job = try #require(try await queue.inspector.job(added.id))
        #expect(job.checkpoint == Array("after".utf8))
        #expect(job.error?.details.contains("a protocol line of more than 5000000 bytes on fd 3 was dropped") == true, "\(job.error?.details ?? "")")
    }
}

@Suite("Reliability: bulk operator actions", .awaitedTeardown)
struct BulkActionTests {
    /// Script calls (EVAL + EVALSHA) the server has run since the last CONFIG RESETSTAT.
    static func scriptCalls(_ client: RedisClient) async throws -> Int {
        let text = try await client.send("INFO", "commandstats").string ?? ""
        var calls = 0
        for line in text.split(whereSeparator: \.isNewline) where line.hasPrefix("cmdstat_evalsha:") || line.hasPrefix("cmdstat_eval:") {
            if let range = line.range(of: "calls="), let n = Int(line[range.upperBound...].prefix { $0.isNumber }) { calls += n }
        }
        return calls
    }

    @Test("cancelling, retrying and removing 1,000 ids take a handful of script calls, not one per id; outcomes stay per id and in order")
    func batched() async throws {
        try await withPrivateRedis { server in
            let client = RedisClient(configuration: server.configuration)
            onTeardown { await client.close() }
            let queue = try JobQueue(name: "bulk", client: client)
            try await queue.inspector.setRetention(cancelled: 2000)
            let added = try await queue.addBulk((0..<1000).map { _ in .init(name: "x", payload: .json("{}")) })
            var ids = try added.map { try $0.get().id }
            // One running job and one unknown id among them: their outcomes are their own.
            let (running, _) = try #require(try await queue.takeJob())
            ids.append("no-such-job")
            _ = try await client.send("CONFIG", "RESETSTAT")
            let outcomes = try await queue.cancel(ids)
            let cancelCalls = try await Self.scriptCalls(client)
            #expect(cancelCalls <= 8, "\(cancelCalls) script calls for 1,001 cancels")
            #expect(outcomes.count == 1001 && outcomes.last == .notFound)
            #expect(outcomes.filter { $0 == .cancelled }.count == 999)
            #expect(outcomes[ids.firstIndex(of: running.id)!] == .cancelRequested(listeners: 0))
            #expect(try await queue.inspector.counts().waiting == 0)

            _ = try await client.send("CONFIG", "RESETSTAT")
            let retried = try await queue.inspector.retry(ids)
            #expect(try await Self.scriptCalls(client) <= 4)
            #expect(retried.filter { $0 == .retried }.count == 999)

            _ = try await client.send("CONFIG", "RESETSTAT")
            let removed = try await queue.inspector.remove(ids)
            #expect(try await Self.scriptCalls(client) <= 8)
            #expect(removed.filter { if case .removed(from: .waiting) = $0 { return true } else { return false } }.count == 999)
            #expect(removed[ids.firstIndex(of: running.id)!] == .isActive && removed.last == .notFound)
            let events = try await queue.eventKinds(for: ids[1])
            #expect(events == ["added", "cancelled", "waiting", "removed"], "\(events)")
        }
    }
}
