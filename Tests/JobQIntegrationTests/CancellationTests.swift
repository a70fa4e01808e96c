import AsyncHTTPClient
import Foundation
import Hummingbird
import JobQWorkerKit
import LocalRedis
import Synchronization
import Testing

@testable import JobQ
@testable import JobQRedis

#if canImport(Glibc)
    import Glibc
#endif

/// Cancel any job from any process, promptly and reliably (`docs/job-lifecycle.md`).
@Suite("Cancellation", .awaitedTeardown)
struct CancellationTests {
    @Test("a slow onCancel closure delays no other job's cancel: closures run off the pub/sub thread that delivers every cancel")
    func slowOnCancel() async throws {
        let queue = try await uniqueQueue()
        // Blocks whatever thread runs the closure until the test lets it go.
        let release = DispatchSemaphore(value: 0)
        var handlers = JobHandlers()
        handlers.register(name: "slow-callback") { _, context in
            context.onCancel { _ in release.wait() }
            _ = await context.waitForCancellation()
            return []
        }
        handlers.register(name: "plain") { _, context in
            _ = await context.waitForCancellation()
            return []
        }
        let slow = try await queue.add(name: "slow-callback", payload: .json("{}")).id
        let plain = try await queue.add(name: "plain", payload: .json("{}")).id
        // A 60 s lease renews every 20 s: within the 10 s below only the cancel message can
        // reach the plain job, not a renewal reporting its stored request.
        try await withWorker(queue, concurrency: 4, lease: .seconds(60), handlers: handlers) { _ in
            defer { release.signal() }
            try await queue.expectEvents(.active, count: 2)
            _ = try await queue.cancel(slow)
            _ = try await queue.cancel(plain)
            try await queue.expectEvents(.cancelled, job: plain, within: 10)
            release.signal()
            try await queue.expectEvents(.cancelled, job: slow, within: 10)
        }
    }

    @Test("the token: isCancelled, checkCancellation, onCancel and the cancellations sequence all see the reason")
    func tokenViews() async throws {
        let queue = try await uniqueQueue()
        let started = Latch()
        let seen = Mutex<[String]>([])
        var handlers = JobHandlers()
        handlers.register(name: "loop") { _, context in
            context.onCancel { reason in seen.withLock { $0.append("onCancel \(reason)") } }
            started.open()
            for await reason in context.cancellations {
                seen.withLock { $0.append("sequence \(reason), isCancelled \(context.isCancelled)") }
            }
            do {
                try context.checkCancellation()
            } catch {
                seen.withLock { $0.append("check \((error as? JobCancelledError)?.reason.description ?? "?")") }
                throw error
            }
            return []
        }
        let added = try await queue.add(name: "loop", payload: .json("{}"))
        try await withWorker(queue, lease: .seconds(60), handlers: handlers) { _ in
            await started.wait()
            _ = try await queue.cancel(added.id, reason: "operator", requestedBy: "test")
            try await queue.expectEvents(.cancelled, job: added.id, within: 20)
        }
        #expect(seen.withLock { $0 }.sorted() == ["check cancelled", "onCancel cancelled", "sequence cancelled, isCancelled true"])
        let job = try #require(try await queue.inspector.job(added.id))
        #expect(job.cancelReason == "operator" && job.cancelRequestedBy == "test" && job.attemptsMade == 1)
        let kinds = try await queue.eventKinds(for: added.id)
        #expect(kinds == ["added", "active", "cancel-requested", "cancelled"], "\(kinds)")
    }

    @Test("a missed message: with the subscriber killed, or the flag stored with no message at all, the renewal still cancels the job")
    func missedMessage() async throws {
        // A server of its own: CLIENT KILL TYPE pubsub must not touch other tests' subscribers.
        let server = try await RedisServerProcess.start()
        onTeardown { await server.destroy() }
        let admin = RedisClient(configuration: server.configuration)
        onTeardown { await admin.close() }
        let queue = try await uniqueQueue(client: admin)
        let started = Mutex<Set<String>>([])
        var handlers = JobHandlers()
        handlers.register(name: "deaf") { job, context in
            started.withLock { _ = $0.insert(job.id) }
            // Ignores the token: Redis must be updated anyway; the handler returns when told.
            _ = await context.waitForCancellation()  // an event, not a polling loop
            return []
        }
        let a = try await queue.add(name: "deaf", payload: .json("{}")).id
        let b = try await queue.add(name: "deaf", payload: .json("{}")).id
        // Lease 3 s: renewals every second; a message would act within milliseconds.
        try await withWorker(queue, concurrency: 2, lease: .seconds(3), handlers: handlers) { _ in
            try await eventually(20, "both running") { started.withLock { $0.count } == 2 }

            // 1. The worker's pub/sub connection dies just before the cancel.
            _ = try await admin.send("CLIENT", "KILL", "TYPE", "pubsub")
            _ = try await queue.cancel(a)
            try await queue.expectEvents(.cancelled, job: a, within: 20)

            // 2. The flag alone, as if the message were lost in a failover: only the renewal
            // (which returns flagged ids) can find it.
            _ = try await admin.send(
                "HSET", queue.keys.job(b), JobField.cancelRequested.rawValue, JobField.flagSet, JobField.cancelReason.rawValue, "lost message",
                JobField.cancelRequestedBy.rawValue, "test")
            try await queue.expectEvents(.cancelled, job: b, within: 20)
        }
        #expect(try await queue.inspector.job(b)?.error?.details == "lost message")
    }

    @Test("cancel racing completion over 1,000 jobs: each ends in exactly one terminal state; a cancelled job never runs again")
    func raceWithCompletion() async throws {
        let queue = try await uniqueQueue()
        try await queue.inspector.setRetention(completed: 5000, failed: 5000, cancelled: 5000)
        let runs = Mutex<[String: Int]>([:])
        var handlers = JobHandlers()
        handlers.register(name: "quick") { job, context in
            runs.withLock { $0[job.id, default: 0] += 1 }
            try? await Task.sleep(for: .microseconds(Int.random(in: 0...2000)))
            try context.checkCancellation()
            return []
        }
        let ids = try await queue.addBulk((0..<1000).map { _ in JobQueue.NewJob(name: "quick", payload: .json("{}")) }).map { try $0.get().id }
        var outcomes: [String: JobQueue.CancelOutcome] = [:]
        try await withWorker(queue, concurrency: 16, handlers: handlers) { _ in
            // Cancel every job in a shuffled order while the worker drains them.
            for chunk in stride(from: 0, to: ids.count, by: 50).map({ Array(ids.shuffled()[$0..<min($0 + 50, ids.count)]) }) {
                for (id, outcome) in zip(chunk, try await queue.cancel(chunk)) where outcomes[id] == nil { outcomes[id] = outcome }
            }
            try await eventually(60, "all 1,000 finished") {
                let c = try await queue.inspector.counts()
                return c.completed + c.cancelled == 1000 && c.active == 0 && c.waiting == 0
            }
        }
        let completed = Set(try await queue.client.send("ZRANGE", queue.keys.completed, 0, -1).array?.compactMap(\.string) ?? [])
        let cancelled = Set(try await queue.client.send("ZRANGE", queue.keys.cancelled, 0, -1).array?.compactMap(\.string) ?? [])
        #expect(completed.isDisjoint(with: cancelled) && completed.count + cancelled.count == 1000)
        var terminalEvents: [String: Int] = [:]
        for row in try await queue.client.send(RedisCommand("XRANGE", queue.keys.events, "-", "+")).array ?? [] {
            guard let entry = row.array, entry.count == 2, let flat = entry[1].array,
                let event = QueueEvent(streamID: entry[0].string ?? "", flat: flat)
            else { continue }
            if ["completed", "cancelled", "failed"].contains(event.kind.description) { terminalEvents[event.jobID, default: 0] += 1 }
        }
        #expect(terminalEvents.count == 1000 && terminalEvents.values.allSatisfy { $0 == 1 }, "one terminal event per job")
        let runCounts = runs.withLock { $0 }
        for (id, outcome) in outcomes {
            switch outcome {
            case .cancelled:
                #expect(cancelled.contains(id) && runCounts[id] == nil, "cancelled while waiting: never ran")
            case .alreadyFinished(let state):
                #expect(state == .completed && completed.contains(id), "success that won the race stays completed")
            case .cancelRequested:
                #expect(runCounts[id] == 1, "ran exactly once")
            case .notFound:
                Issue.record("job \(id) not found")
            }
        }
        #expect(runCounts.values.allSatisfy { $0 == 1 }, "no job ran twice")
    }

    @Test("races in Lua: a cancel request beats stalled recovery, a finish after it, and a lost lease; a cancelled job is never taken again")
    func luaRaces() async throws {
        let queue = try await uniqueQueue()
        // Cancel vs stalled recovery: the worker died after the cancel request; the reaper ends
        // the job cancelled instead of requeueing it.
        let a = try await queue.add(name: "a", payload: .json("{}")).id
        let (_, leaseA) = try #require(try await queue.takeJob())
        #expect(try await queue.cancel(a, reason: "stop") == .cancelRequested(listeners: 0))
        _ = try await queue.client.send("ZADD", queue.keys.active, 0, a)
        let recovered = try await queue.core.recoverStalled()
        #expect(recovered.cancelled == 1 && recovered.requeued == 0)
        #expect(try await queue.inspector.job(a)?.state == .cancelled)
        // The dead worker's late finish changes nothing.
        if case .leaseLost = try await queue.core.finish(a, token: leaseA.token, end: .completed(result: []), next: nil) {
        } else {
            Issue.record("a late finish after the reaper was not refused")
        }
        #expect(try await queue.inspector.job(a)?.state == .cancelled)

        // Cancel vs a failing run: the request decides, the job is not retried.
        let b = try await queue.add(name: "b", payload: .json("{}"), options: .init(attempts: 5)).id
        let (_, leaseB) = try #require(try await queue.takeJob())
        _ = try await queue.cancel(b)
        _ = try await queue.core.finish(b, token: leaseB.token, end: .failed(reason: "boom", details: "", retryDelayMs: 0), next: nil)
        #expect(try await queue.inspector.job(b)?.state == .cancelled)

        // Cancel vs retry: a job waiting out its backoff is cancelled at once and never runs again.
        let c = try await queue.add(name: "c", payload: .json("{}"), options: .init(attempts: 5)).id
        let (_, leaseC) = try #require(try await queue.takeJob())
        _ = try await queue.core.finish(c, token: leaseC.token, end: .failed(reason: "boom", details: "", retryDelayMs: 60_000), next: nil)
        #expect(try await queue.inspector.job(c)?.state == .delayed)
        #expect(try await queue.cancel(c) == .cancelled)
        #expect(try await queue.takeJob() == nil, "nothing left to take")
        let kinds = try await queue.eventKinds(for: c)
        #expect(kinds.filter { ["completed", "failed", "cancelled"].contains($0) } == ["cancelled"], "\(kinds)")
    }

    @Test("an exec job's whole process group is gone after its cancel")
    func execProcessGroup() async throws {
        let queue = try await uniqueQueue()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("jobq-cancel-exec-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let script = dir.appendingPathComponent("tree.sh").path
        let pids = dir.appendingPathComponent("pids").path
        try """
        #!/bin/sh
        sleep 300 &
        echo $$ $! > \(pids)
        wait
        """.write(toFile: script, atomically: true, encoding: .utf8)
        chmod(script, 0o755)
        var handlers = JobHandlers()
        handlers.register(name: "tree", ExecHandler(executable: script))
        let added = try await queue.add(name: "tree", payload: .json("{}"))
        try await withWorker(queue, lease: .seconds(60), handlers: handlers) { _ in
            try await eventually(20, "the script and its child started") {
                ((try? String(contentsOfFile: pids, encoding: .utf8)) ?? "").split(separator: " ").count == 2
            }
            #expect(try await queue.cancel(added.id) == .cancelRequested(listeners: 1))
            try await queue.expectEvents(.cancelled, job: added.id, within: 20)
            let both = try String(contentsOfFile: pids, encoding: .utf8).split(whereSeparator: \.isWhitespace).compactMap { Int32($0) }
            try await eventually(20, "the shell and its sleeping child are gone") { both.allSatisfy(processIsGone) }
        }
    }

    @Test("an http job's request is aborted on cancel; the job ends cancelled while the server still waits")
    func httpAbort() async throws {
        let serverRelease = Latch()
        let requests = Mutex(0)
        try await withTestServer({ router in
            router.post("slow") { _, _ -> Response in
                requests.withLock { $0 += 1 }
                await serverRelease.wait()
                return Response(status: .ok)
            }
        }) { port in
            let client = HTTPClient(eventLoopGroupProvider: .singleton)
            onTeardown { try? await client.shutdown() }
            let queue = try await uniqueQueue()
            var handlers = JobHandlers()
            handlers.register(
                name: "slow", HTTPHandler(url: URL(string: "http://127.0.0.1:\(port)/slow")!, client: client, requestTimeout: .seconds(300)).handler)
            let added = try await queue.add(name: "slow", payload: .json("{}"))
            try await withWorker(queue, lease: .seconds(60), handlers: handlers) { _ in
                try await eventually(20, "the request arrived") { requests.withLock { $0 } == 1 }
                _ = try await queue.cancel(added.id)
                try await queue.expectEvents(.cancelled, job: added.id, within: 20)
                // The handler returned (request aborted): nothing holds the slot.
                try await eventually(20, "the slot is free") {
                    try await queue.inspector.counts().active == 0
                }
            }
            serverRelease.open()
        }
    }
}

/// Spawns worker processes: nested in the serialized `Executables` suite (`docs/testing.md`).
extension ExecutableTests {
    @Suite("Cancellation across worker processes", .awaitedTeardown)
    struct CancellationProcessTests {
        @Test("cancelling 1,000 running jobs across 4 jobq-worker processes")
        func thousandAcrossProcesses() async throws {
            let server = try await SharedRedis.instance.server()
            let client = RedisClient(configuration: server.configuration)
            onTeardown { await client.close() }
            let queue = try JobQueue(name: "cancel-1000-\(UUID().uuidString.prefix(8)))", client: client)
            try await queue.inspector.setRetention(cancelled: 2000)
            var workers: [WorkerProcess] = []
            for i in 0..<4 {
                let worker = try WorkerProcess([
                    "--redis-url", server.url, "--queue", queue.name, "--handler", "long=sleep:10m",
                    "--concurrency", "250", "--lease", "5s", "--worker-id", "w\(i)",
                ])
                try await worker.waitForLog("worker started")
                workers.append(worker)
            }
            let ids = try await queue.addBulk((0..<1000).map { _ in JobQueue.NewJob(name: "long", payload: .json("{}")) }).map { try $0.get().id }
            try await eventually(60, "1,000 running") { try await queue.inspector.counts().active == 1000 }
            let outcomes = try await queue.cancel(ids, reason: "bulk cancel")
            #expect(outcomes.allSatisfy { if case .cancelRequested(let n) = $0 { n == 4 } else { false } }, "each message reached all 4 workers")
            try await queue.expectEvents(.cancelled, count: 1000, within: 60)
            let counts = try await queue.inspector.counts()
            #expect(counts.active == 0 && counts.waiting == 0 && counts.completed == 0 && counts.failed == 0)
            for worker in workers {
                worker.process.signal(SIGTERM)
                #expect(try await worker.exitCode() == 0, "\(worker.log.suffix(2000))")
            }
        }
    }
}

/// True when no process `pid` runs (a zombie awaiting its reaper counts as gone).
func processIsGone(_ pid: Int32) -> Bool {
    if kill(pid, 0) != 0 { return errno == ESRCH }
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let close = stat.lastIndex(of: ")")
    else { return true }
    return stat[stat.index(close, offsetBy: 2)] == "Z"
}
