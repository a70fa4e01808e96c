import Foundation
import JobQWorkerKit
import Logging
import Synchronization
import Testing

@testable import JobQ
@testable import JobQRedis

@Suite("Worker runtime", .awaitedTeardown)
struct WorkerTests {
    struct Greet: JobParameters {
        static let jobName = "greet"
        var name: String
    }

    @Test("runs every job with at most N at once; results are stored; typed handlers decode payloads")
    func concurrency() async throws {
        let queue = try await uniqueQueue()
        try await queue.inspector.setRetention(completed: 1000)
        let probe = Probe()
        var handlers = JobHandlers()
        handlers.register(Greet.self, returning: String.self) { greet, context in
            probe.enter(context.jobID)
            defer { probe.leave() }
            try await Task.sleep(for: .milliseconds(20))
            return "hello \(greet.name)"
        }
        let ids = try await queue.addBulk((0..<60).map { try JobQueue.NewJob(Greet(name: "n\($0)")) }).map { try $0.get().id }
        try await withWorker(queue, concurrency: 4, handlers: handlers) { _ in
            try await queue.expectEvents(.completed, count: 60, within: 30)
        }
        #expect(probe.maxRunning <= 4)
        #expect(probe.maxRunning >= 2, "jobs ran concurrently")
        #expect(probe.totalRuns == 60)
        let job = try #require(try await queue.inspector.job(ids[7]))
        #expect(job.resultText == #""hello n7""#)
        #expect(try await queue.eventKinds(for: ids[7]) == ["added", "active", "completed"])
    }

    @Test("failures retry with the job's backoff until attempts are spent; UnrecoverableError and bad payloads fail at once")
    func retriesAndFailures() async throws {
        let queue = try await uniqueQueue()
        let probe = Probe()
        var handlers = JobHandlers()
        handlers.register(name: "flaky") { job, context in
            probe.enter(job.id)
            defer { probe.leave() }
            if context.attempt < 3 { throw NSError(domain: "test", code: context.attempt) }
            return Array("ok".utf8)
        }
        handlers.register(name: "fatal") { job, _ in
            throw UnrecoverableError("bad input", reason: "badInput")
        }
        handlers.register(Greet.self) { _, _ in }
        let flaky = try await queue.add(name: "flaky", payload: .json("{}"), options: .init(attempts: 3, backoff: .fixed(.milliseconds(300))))
        let fatal = try await queue.add(name: "fatal", payload: .json("{}"), options: .init(attempts: 5))
        let garbled = try await queue.add(name: Greet.jobName, payload: .json(#"{"nom":1}"#), options: .init(attempts: 5))
        let unknown = try await queue.add(name: "nobody-handles-this", payload: .json("{}"), options: .init(attempts: 2, backoff: .fixed(.milliseconds(10))))
        try await withWorker(queue, handlers: handlers) { _ in
            try await eventually(30, "all four jobs finished") {
                let c = try await queue.inspector.counts()
                return c.completed == 1 && c.failed == 3
            }
        }
        let runs = probe.runs(flaky.id)
        #expect(runs.count == 3)
        for (a, b) in zip(runs, runs.dropFirst()) {
            #expect(b - a >= .milliseconds(300), "retries wait at least the un-jittered backoff")
        }
        let f = try #require(try await queue.inspector.job(fatal.id))
        #expect(f.state == .failed && f.attemptsMade == 1 && f.error?.reason == "badInput")
        let g = try #require(try await queue.inspector.job(garbled.id))
        #expect(g.state == .failed && g.attemptsMade == 1 && g.error?.reason == "undecodablePayload")
        let u = try #require(try await queue.inspector.job(unknown.id))
        #expect(u.state == .failed && u.attemptsMade == 2 && u.error?.reason == "unknownJobName")
    }

    @Test("a timeout fails the attempt at the deadline even when the handler ignores cancellation")
    func timeout() async throws {
        let queue = try await uniqueQueue()
        let latch = Latch()
        var handlers = JobHandlers()
        handlers.register(name: "stubborn") { _, _ in
            await latch.wait()  // ignores task cancellation
            return Array("late".utf8)
        }
        let added = try await queue.add(name: "stubborn", payload: .json("{}"), options: .init(attempts: 1, timeout: .milliseconds(300)))
        try await withWorker(queue, handlers: handlers) { _ in
            try await queue.expectEvents(.failed, job: added.id, within: 20)
            let job = try #require(try await queue.inspector.job(added.id))
            #expect(job.error?.reason == "timeout")
            latch.open()
        }
        #expect(try await queue.inspector.job(added.id)?.state == .failed, "the late result was discarded")
    }

    @Test("cancelling a running job fires its token; it ends cancelled and is not retried")
    func cancelRunning() async throws {
        let queue = try await uniqueQueue()
        let started = Latch()
        var handlers = JobHandlers()
        handlers.register(name: "long") { _, context in
            started.open()
            _ = await context.waitForCancellation()  // an event, not a polling loop
            try context.checkCancellation()
            return []
        }
        let added = try await queue.add(name: "long", payload: .json("{}"), options: .init(attempts: 5))
        // A long lease: the cancel must come through pub/sub, not the next renewal.
        try await withWorker(queue, lease: .seconds(60), handlers: handlers) { _ in
            await started.wait()
            #expect(try await queue.cancel(added.id, reason: "user asked") == .cancelRequested(listeners: 1), "the worker's subscriber heard it")
            try await queue.expectEvents(.cancelled, job: added.id, within: 10)
        }
        let job = try #require(try await queue.inspector.job(added.id))
        #expect(job.attemptsMade == 1 && job.cancelReason == "user asked")
    }

    @Test("shutdown lets short jobs finish and requeues long ones with no attempt used")
    func gracefulShutdown() async throws {
        let queue = try await uniqueQueue()
        let started = Latch()
        var handlers = JobHandlers()
        handlers.register(name: "endless") { _, context in
            started.open()
            _ = await context.waitForCancellation()  // an event, not a polling loop
            throw JobCancelledError(reason: context.cancellationReason ?? .shutdown)
        }
        let added = try await queue.add(name: "endless", payload: .json("{}"))
        try await withWorker(queue, grace: .milliseconds(300), handlers: handlers) { _ in
            await started.wait()
        }
        let job = try #require(try await queue.inspector.job(added.id))
        #expect(job.state == .waiting && job.attemptsMade == 0 && job.stallCount == 0)
        #expect(try await queue.eventKinds(for: added.id) == ["added", "active", "waiting"])
    }

    @Test("shutdown with a handler that ignores its token: run() still returns, the job is requeued with no attempt used, the worker leaves the list")
    func shutdownPastUnresponsiveHandler() async throws {
        let queue = try await uniqueQueue()
        let started = Latch()
        let never = Latch()
        var handlers = JobHandlers()
        handlers.register(name: "deaf") { _, _ in
            started.open()
            await never.wait()  // ignores its token and task cancellation
            return []
        }
        let added = try await queue.add(name: "deaf", payload: .json("{}"))
        let deaf = handlers
        // Bounded: a run() that waits for the deaf handler would hang here, not pass.
        let workerID = try await within(60, "run() to return past a handler that ignores its token") {
            try await withWorker(queue, grace: .milliseconds(200), handlers: deaf) { worker in
                await started.wait()
                try await eventually(20, "the worker's first beat") {
                    try await WorkerInfo.list(client: queue.client).contains { $0.id == worker.configuration.workerID }
                }
                return worker.configuration.workerID
            }
        }
        // withWorker returned: run() ended although the handler never did.
        let job = try #require(try await queue.inspector.job(added.id))
        #expect(job.state == .waiting && job.attemptsMade == 0, "requeued with no attempt used: \(job.state), \(job.attemptsMade)")
        #expect(try await WorkerInfo.list(client: queue.client).contains { $0.id == workerID } == false, "the goodbye removed it from the list")
        never.open()
    }

    @Test("late finisher: a run whose lease was lost is stopped, the job re-runs, and the stale result is discarded")
    func lateFinisher() async throws {
        let queue = try await uniqueQueue()
        let firstStarted = Latch()
        let release = Latch()
        let probe = Probe()
        var handlers = JobHandlers()
        handlers.register(name: "slow") { job, context in
            probe.enter(job.id)
            defer { probe.leave() }
            // Both runs are attempt 1 (a stall gives its attempt back): tell them apart by count.
            if probe.runs(job.id).count == 1 {
                firstStarted.open()
                await release.wait()  // ignores cancellation: finishes late
                return Array("stale".utf8)
            }
            return Array("fresh".utf8)
        }
        let added = try await queue.add(name: "slow", payload: .json("{}"), options: .init(maxStalls: 5))
        try await withWorker(queue, concurrency: 2, lease: .seconds(1), handlers: handlers) { _ in
            await firstStarted.wait()
            // Force the lease to expire and reap it in one transaction (a live worker's renewal
            // would otherwise extend it again): the job goes back to waiting as stalled.
            var batch = RedisBatch()
            batch.append(RedisCommand("MULTI"))
            batch.append(RedisCommand("ZADD", queue.keys.active, 0, added.id))
            batch.append(queue.core.scripts.recoverStalled, keys: queue.core.recoverKeys, arguments: [queue.core.maxLen, 1000, "test", 0])
            batch.append(RedisCommand("EXEC"))
            let replies = try await queue.client.execute(batch)
            #expect(replies.last?.array?.last?.array?.first == .integer(1), "the reaper requeued it: \(replies)")
            try await queue.expectEvents(.completed, job: added.id, within: 20)
            release.open()
            // Wait for the stale handler to return (an event, not a fixed sleep), so a wrongly
            // written late result would be in Redis before the checks below.
            try await eventually(20, "the stale handler returned") { probe.running == 0 }
        }
        let job = try #require(try await queue.inspector.job(added.id))
        #expect(job.resultText == "fresh" && job.stallCount == 1 && job.attemptsMade == 1)
        #expect(try await queue.eventKinds(for: added.id).filter { $0 == "completed" }.count == 1)
        #expect(probe.runs(added.id).count == 2)
    }

    @Test("a delayed job starts on time while the worker is idle (timer, not polling)")
    func delayedStart() async throws {
        let queue = try await uniqueQueue()
        let probe = Probe()
        var handlers = JobHandlers()
        handlers.register(name: "later") { job, _ in
            probe.enter(job.id)
            probe.leave()
            return []
        }
        try await withWorker(queue, handlers: handlers) { _ in
            try await eventually(20, "the worker is idle on the marker") {
                try await WorkerInfo.list(client: queue.client, queue: queue.name).isEmpty == false
            }
            let t0 = ContinuousClock.now
            let added = try await queue.add(name: "later", payload: .json("{}"), options: .init(delay: .milliseconds(400)))
            try await eventually(20, "the delayed job ran") { probe.runs(added.id).count == 1 }
            #expect(probe.runs(added.id)[0] - t0 >= .milliseconds(390), "not before it is due")
        }
    }

    @Test("progress is coalesced and recorded; checkpoints are saved and handed to the next attempt")
    func progressAndCheckpoints() async throws {
        let queue = try await uniqueQueue()
        var handlers = JobHandlers()
        handlers.register(name: "steps") { _, context in
            let start = context.lastCheckpoint(as: Int.self) ?? 0
            for step in start..<10 {
                context.progress(percent: Double(step + 1) * 10, message: "step \(step + 1)")
                try await context.checkpoint(step + 1)
                if step == 4 && context.attempt == 1 { throw NSError(domain: "test", code: 1) }
            }
            return Array("from \(start)".utf8)
        }
        let added = try await queue.add(name: "steps", payload: .json("{}"), options: .init(backoff: .fixed(.milliseconds(10))))
        try await withWorker(queue, handlers: handlers) { _ in
            try await queue.expectEvents(.completed, job: added.id, within: 20)
        }
        let job = try #require(try await queue.inspector.job(added.id))
        #expect(job.resultText == "from 5", "the second attempt resumed from the first one's checkpoint")
        try await eventually(5, "final progress written") { try await queue.inspector.job(added.id)?.progress?.percent == 100 }
        let progressEvents = try await queue.eventKinds(for: added.id).filter { $0 == "progress" }.count
        #expect(progressEvents >= 1 && progressEvents < 20, "progress writes are coalesced")
    }
}

@Suite("Worker runtime: shares and heartbeats", .awaitedTeardown)
struct WorkerSharingTests {
    @Test("two queues weighted 3:1 share the slots 3:1 while both have work; one alone may use them all")
    func weights() async throws {
        let heavy = try await uniqueQueue("heavy")
        let light = try JobQueue(name: heavy.name + "-light", client: heavy.client)
        let probe = Probe()
        let running = Mutex<[String: Int]>([:])
        let peak = Mutex<[String: Int]>([:])
        let lightBusyPeak = Mutex(0)
        var handlers = JobHandlers()
        handlers.register(name: "w") { job, _ in
            running.withLock { $0[job.queue, default: 0] += 1 }
            let now = running.withLock { $0[job.queue] ?? 0 }
            peak.withLock { p in p[job.queue] = max(p[job.queue] ?? 0, now) }
            if job.queue == light.name, (try? await heavy.inspector.counts().waiting) ?? 0 >= 5 {
                // The heavy queue clearly has work: the light one must stay within its quota (2 of 8).
                lightBusyPeak.withLock { $0 = max($0, now) }
            }
            probe.enter(job.id)
            try await Task.sleep(for: .milliseconds(30))
            probe.leave()
            running.withLock { $0[job.queue, default: 0] -= 1 }
            return []
        }
        _ = try await heavy.addBulk((0..<80).map { _ in JobQueue.NewJob(name: "w", payload: .json("{}")) })
        _ = try await light.addBulk((0..<80).map { _ in JobQueue.NewJob(name: "w", payload: .json("{}")) })
        try await withWorker(
            heavy, concurrency: 8,
            configure: { c in
                c.queues = [.init(heavy.name, weight: 3), .init(light.name, weight: 1)]
            }, handlers: handlers
        ) { _ in
            try await eventually(30, "all 160 jobs done") {
                let a = try await heavy.inspector.counts()
                let b = try await light.inspector.counts()
                return a.waiting + a.active + b.waiting + b.active == 0
            }
        }
        let peaks = peak.withLock { $0 }
        #expect(probe.maxRunning <= 8)
        #expect((peaks[light.name] ?? 0) >= 1)
        // While both queues had work, the light one stayed near its quota of 2; once the heavy
        // one ran dry it could take more, but never beyond the worker's 8 slots.
        #expect((peaks[heavy.name] ?? 0) >= 5, "\(peaks)")
        #expect(lightBusyPeak.withLock { $0 } <= 2, "the light queue kept to its share while the heavy one had work")
    }

    @Test("a running worker appears in the worker list with its queues and leaves it at a graceful stop")
    func heartbeats() async throws {
        let queue = try await uniqueQueue()
        var handlers = JobHandlers()
        handlers.register(name: "x") { _, _ in [] }
        let id = "hb-\(UUID().uuidString.prefix(8))"
        // A 3 s lease: the record expires 3 beats (3 s) after the last, room for a loaded CI machine.
        try await withWorker(queue, concurrency: 3, lease: .seconds(3), configure: { $0.workerID = id }, handlers: handlers) { _ in
            try await eventually(20, "the heartbeat") { try await WorkerInfo.list(client: queue.client).contains { $0.id == id } }
            let me = try #require(try await WorkerInfo.list(client: queue.client, queue: queue.name).first { $0.id == id })
            #expect(me.concurrency == 3 && me.queues == ["\(queue.name):1"] && me.pid == Int(ProcessInfo.processInfo.processIdentifier))
            #expect(me.lastSeen != nil && me.started != nil)
        }
        #expect(try await WorkerInfo.list(client: queue.client).contains { $0.id == id } == false)
    }
}

@Suite("Worker runtime: exec handlers", .awaitedTeardown)
struct ExecHandlerTests {
    static func sh(_ script: String, killAfter: Duration = .seconds(10)) -> ExecHandler {
        var exec = ExecHandler(executable: "/bin/sh", arguments: ["-c", script])
        exec.killAfter = killAfter
        return exec
    }

    @Test("payload on stdin, progress, checkpoint and result on fd 3, the job's environment and nothing of Redis")
    func success() async throws {
        let queue = try await uniqueQueue()
        var handlers = JobHandlers()
        handlers.register(
            name: "ok",
            Self.sh(
                """
                input=$(cat)
                echo "progress 50 half way" >&3
                echo "checkpoint $(printf 'step-1' | base64)" >&3
                if env | grep -q '^JOBQ_REDIS'; then echo "leaked Redis settings" >&2; exit 100; fi
                [ "$JOBQ_JOB_NAME" = ok ] && [ "$JOBQ_ATTEMPT" = 1 ] && [ -n "$JOBQ_EXECUTION_ID" ] || exit 100
                printf 'result %s\\n' "$(printf 'got %s for %s on %s' "$input" "$JOBQ_JOB_ID" "$JOBQ_QUEUE_NAME" | base64 | tr -d '\\n')" >&3
                test -f "$JOBQ_JOB_CHECKPOINT_FILE"
                """))
        let added = try await queue.add(name: "ok", payload: .json(#"{"n":1}"#))
        // The worker's own environment has Redis settings; the program must not see them.
        setenv("JOBQ_REDIS_URL_FOR_EXEC_TEST", "redis://secret@example", 1)
        defer { unsetenv("JOBQ_REDIS_URL_FOR_EXEC_TEST") }
        try await withWorker(queue, handlers: handlers) { _ in
            try await queue.expectEvents(.completed, job: added.id, within: 20)
        }
        let job = try #require(try await queue.inspector.job(added.id))
        #expect(job.resultText == #"got {"n":1} for \#(added.id) on \#(queue.name)"#)
        #expect(job.checkpoint == Array("step-1".utf8))
        #expect(job.progress == .init(percent: 50, message: "half way"))
    }

    @Test("exit 100 fails without retry; another exit code is a retried attempt; output becomes the details")
    func failures() async throws {
        let queue = try await uniqueQueue()
        var handlers = JobHandlers()
        handlers.register(name: "fatal", Self.sh("echo 'bad input' >&2; exit 100"))
        handlers.register(name: "flaky", Self.sh("echo \"try $JOBQ_ATTEMPT\"; [ \"$JOBQ_ATTEMPT\" -ge 2 ]"))
        let fatal = try await queue.add(name: "fatal", payload: .json("{}"), options: .init(attempts: 5))
        let flaky = try await queue.add(name: "flaky", payload: .json("{}"), options: .init(attempts: 3, backoff: .fixed(.milliseconds(10))))
        try await withWorker(queue, handlers: handlers) { _ in
            try await eventually(20, "both ended") {
                let a = try await queue.inspector.job(fatal.id)?.state
                let b = try await queue.inspector.job(flaky.id)?.state
                return a == .failed && b == .completed
            }
        }
        let f = try #require(try await queue.inspector.job(fatal.id))
        #expect(f.attemptsMade == 1 && f.error?.reason == "exitCode100" && f.error?.details.contains("bad input") == true)
        let g = try #require(try await queue.inspector.job(flaky.id))
        #expect(g.attemptsMade == 2 && g.previousError == nil && g.error?.details.contains("try 1") == true)
    }

    @Test("a timeout sends SIGTERM to the process group, then SIGKILL to a child that traps it; `yes | head -1` ends")
    func signals() async throws {
        let queue = try await uniqueQueue()
        var handlers = JobHandlers()
        handlers.register(name: "stubborn", Self.sh("trap '' TERM; while :; do sleep 0.05; done", killAfter: .milliseconds(500)))
        handlers.register(name: "pipe", Self.sh("yes | head -1"))
        let stubborn = try await queue.add(name: "stubborn", payload: .json("{}"), options: .init(attempts: 1, timeout: .milliseconds(300)))
        let pipe = try await queue.add(name: "pipe", payload: .json("{}"))
        try await withWorker(queue, handlers: handlers) { _ in
            try await eventually(20, "both ended") {
                let a = try await queue.inspector.job(stubborn.id)?.state
                let b = try await queue.inspector.job(pipe.id)?.state
                return a == .failed && b == .completed
            }
        }
        #expect(try await queue.inspector.job(stubborn.id)?.error?.reason == "timeout")
    }
}
