import Foundation
import JobQWorkerKit
import Synchronization
import Testing

@testable import JobQ
@testable import JobQRedis

/// Flow limits enforced by the take script (`docs/flow-control.md`): the concurrency cap, the
/// rate limit, a handler's throttle and the maximum of waiting jobs.
@Suite("Flow control: limits every take enforces", .awaitedTeardown)
struct FlowControlTests {
    @Test("concurrency cap: a take at the cap is refused until a finish frees a slot, which re-arms the marker; counts say what waits and why")
    func concurrencyCapInTheScript() async throws {
        let queue = try await uniqueQueue()
        let inspector = queue.inspector
        try await inspector.setLimits(concurrency: .set(2))
        for i in 0..<5 { _ = try await queue.add(name: "j", payload: .json("{}"), options: .init(jobID: "c\(i)")) }
        let first = try #require(try await queue.takeJob())
        _ = try #require(try await queue.takeJob())
        guard case .limited(let wait, let limit) = try await queue.core.take(lease: JobQueue.testLease()) else {
            Issue.record("a third take under a cap of 2 is refused")
            return
        }
        #expect(wait == nil && limit == "concurrency", "a slot frees by an event, not a timer")
        #expect(try await queue.members(queue.core.keys.marker).isEmpty, "a refused take leaves fetchers asleep")
        let counts = try await inspector.counts()
        #expect(counts.limits.concurrency == 2 && counts.limitedBy == "concurrency" && counts.waitingForLimit == 3 && counts.limitWaitMs == nil)
        // A finish that does not take the next job frees a slot for someone else: the marker.
        _ = try await queue.core.finish(first.0.id, token: first.1.token, end: .completed(result: []), next: nil)
        #expect(try await queue.members(queue.core.keys.marker) == ["0"], "the freed slot wakes a fetcher")
        _ = try #require(try await queue.takeJob(), "the freed slot is taken")
        guard case .limited = try await queue.core.take(lease: JobQueue.testLease()) else {
            Issue.record("at the cap again")
            return
        }
        // Raising the cap takes effect at the next take, and wakes fetchers.
        try await inspector.setLimits(concurrency: .set(3))
        #expect(try await queue.members(queue.core.keys.marker) == ["0"])
        _ = try #require(try await queue.takeJob())
        try await inspector.setLimits(concurrency: .off)
        _ = try #require(try await queue.takeJob(), "no cap: the last job is taken")
        #expect(try await inspector.counts().active == 4)
    }

    @Test("rate limit: N starts per window across takes; the refusal says when the next start may go; the log goes with the limit")
    func rateLimitInTheScript() async throws {
        let queue = try await uniqueQueue()
        let inspector = queue.inspector
        let limits = try await inspector.setLimits(rate: .set(RateLimit(3, per: .seconds(2))))
        #expect(limits.rate == RateLimit(3, per: .seconds(2)))
        for i in 0..<6 { _ = try await queue.add(name: "j", payload: .json("{}"), options: .init(jobID: "r\(i)")) }
        for _ in 0..<3 { _ = try #require(try await queue.takeJob()) }
        guard case .limited(let wait, let limit) = try await queue.core.take(lease: JobQueue.testLease()) else {
            Issue.record("a fourth start inside the window is refused")
            return
        }
        #expect(limit == "rate")
        let ms = try #require(wait)
        #expect(ms > 0 && ms <= 2000, "the wait ends when the oldest start leaves the window: \(ms)")
        let counts = try await inspector.counts()
        #expect(counts.startsInWindow == 3 && counts.limitedBy == "rate" && counts.waitingForLimit == 3)
        // Lowering the limit below what the window holds: the wait covers enough starts leaving.
        try await inspector.setLimits(rate: .set(RateLimit(1, per: .seconds(2))))
        let newest = try #require(try await queue.client.send(RedisCommand("LINDEX", queue.core.keys.rate, -1)).string.flatMap { Int($0) })
        let before = try await redisMilliseconds(queue.client)
        guard case .limited(let lower?, "rate") = try await queue.core.take(lease: JobQueue.testLease()) else {
            Issue.record("still refused")
            return
        }
        let after = try await redisMilliseconds(queue.client)
        #expect(lower >= newest + 2000 - after && lower <= newest + 2000 - before, "waits for the newest of the 3 starts to leave the window, not the oldest")
        try await inspector.setLimits(rate: .off)
        #expect(try await queue.client.send(RedisCommand("EXISTS", queue.core.keys.rate)).int == 0, "the log goes with the limit")
        _ = try #require(try await queue.takeJob(), "no rate: taken at once")
    }

    /// The Redis clock, ms.
    func redisMilliseconds(_ client: RedisClient) async throws -> Int {
        let t = try #require(try await client.send(RedisCommand("TIME")).array?.compactMap(\.string).compactMap { Int($0) })
        return t[0] * 1000 + t[1] / 1000
    }

    @Test(
        "max waiting: an add beyond it throws queueFull and writes nothing; addBulk says so per job; a dedup add still answers; delayed jobs count"
    )
    func maxWaiting() async throws {
        let queue = try await uniqueQueue()
        try await queue.inspector.setLimits(maxWaiting: .set(3))
        _ = try await queue.add(name: "j", payload: .json("{}"), options: .init(jobID: "w0"))
        _ = try await queue.add(name: "j", payload: .json("{}"), options: .init(jobID: "w1", delay: .seconds(60)))
        let before = try await queue.allKeys().count
        let results = try await queue.addBulk((2..<6).map { JobQueue.NewJob(name: "j", payload: .json("{}"), options: .init(jobID: "w\($0)")) })
        #expect(results.count == 4)
        #expect((try? results[0].get().created) == true, "one place was left")
        for result in results.dropFirst() {
            guard case .failure(let error) = result else {
                Issue.record("beyond the maximum: \(result)")
                continue
            }
            #expect(error.code == .queueFull && error.description.contains("3 waiting and delayed"), "\(error)")
        }
        await #expect(throws: JobQError.self) { _ = try await queue.add(name: "j", payload: .json("{}"), options: .init(jobID: "w9")) }
        #expect(try await queue.inspector.job("w9") == nil)
        let after = try await queue.allKeys().count
        #expect(after == before + 1, "nothing written but w2's record")
        #expect(try await queue.add(name: "j", payload: .json("{}"), options: .init(jobID: "w0")).created == false, "dedup answers as before")
        let counts = try await queue.inspector.counts()
        #expect(counts.waiting + counts.delayed == 3 && counts.limits.maxWaiting == 3)
        // A take makes room.
        _ = try #require(try await queue.takeJob())
        #expect(try await queue.add(name: "j", payload: .json("{}"), options: .init(jobID: "w9")).created)
    }

    @Test("invalid limits are refused with the range; clearingAll removes every limit and a throttle")
    func validation() async throws {
        let queue = try await uniqueQueue()
        let inspector = queue.inspector
        for bad in [RateLimit(0, per: .seconds(1)), RateLimit(5, per: .zero), RateLimit(5, per: .seconds(2 * 86_400)), RateLimit(200_000, per: .seconds(1))] {
            await #expect(throws: JobQError.self) { try await inspector.setLimits(rate: .set(bad)) }
        }
        await #expect(throws: JobQError.self) { try await inspector.setLimits(concurrency: .set(0)) }
        await #expect(throws: JobQError.self) { try await inspector.setLimits(maxWaiting: .set(-1)) }
        #expect(try await inspector.limits().isEmpty, "nothing was written")
        #expect(RateLimit(parsing: "100/1s") == RateLimit(100, per: .seconds(1)))
        #expect(RateLimit(parsing: "5000/m") == RateLimit(5000, per: .seconds(60)))
        #expect(RateLimit(parsing: "10/250ms")?.description == "10/250ms")
        for text in ["", "100", "/1s", "-1/1s", "1/x", "1/1s/2", "0x10/1s"] { #expect(RateLimit(parsing: text) == nil, "\(text)") }
        try await inspector.setLimits(rate: .set(RateLimit(5, per: .seconds(1))), concurrency: .set(2), maxWaiting: .set(10))
        let limits = try await inspector.limits()
        #expect(limits.rate?.count == 5 && limits.concurrency == 2 && limits.maxWaiting == 10)
        #expect(try await inspector.setLimits(clearingAll: true).isEmpty)
        #expect(try await queue.expectEvents(.limits, count: 2).count == 2, "each change is an event")
    }

    @Test("RateLimited from a handler: the job goes back first in line with no attempt used, and no start happens before the throttle ends")
    func handlerThrottle() async throws {
        let queue = try await uniqueQueue()
        try await queue.inspector.setRetention(completed: 100)
        let starts = Mutex<[String: Int]>([:])
        var handlers = JobHandlers()
        handlers.register(name: "api") { job, context in
            let n = starts.withLock { s in
                s[job.id, default: 0] += 1
                return s[job.id]!
            }
            if job.id == "t0" && n == 1 { throw RateLimited(retryAfter: .milliseconds(800)) }
            return []
        }
        for i in 0..<3 { _ = try await queue.add(name: "api", payload: .json("{}"), options: .init(jobID: "t\(i)", attempts: 1)) }
        try await withWorker(queue, concurrency: 1, handlers: handlers) { _ in
            try await queue.expectEvents(.completed, count: 3, within: 30)
        }
        let job = try #require(try await queue.inspector.job("t0"))
        #expect(job.state == .completed && job.attemptsMade == 1, "attempts 1 and still completed: the throttled start used none")
        // From the events (Redis clock): the requeue, then the next start no earlier than 800 ms on.
        var requeuedAt: Int?
        var nextStart: (id: String, ms: Int)?
        for try await element in queue.events(from: .beginning) {
            guard case .event(let event) = element else { continue }
            let ms = Int(event.streamID.split(separator: "-")[0])!
            if event.kind == .waiting, event.failure?.reason == "rateLimited" {
                requeuedAt = ms
                #expect(event.retryDelay == .milliseconds(800))
            } else if event.kind == .active, requeuedAt != nil {
                nextStart = (event.jobID, ms)
                break
            }
        }
        let requeued = try #require(requeuedAt)
        let next = try #require(nextStart)
        #expect(next.id == "t0", "the throttled job runs first when the throttle ends")
        #expect(next.ms - requeued >= 799, "no start inside the throttle: \(next.ms - requeued) ms")
    }

    @Test("exec: a program that writes `throttle 600ms` on fd 3 and exits non-zero throttles the queue; its job reruns first with no attempt used")
    func execThrottle() async throws {
        let queue = try await uniqueQueue()
        try await queue.inspector.setRetention(completed: 100)
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("throttle-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        onTeardown { try? FileManager.default.removeItem(at: scratch) }
        // First run of job x0: throttle and fail; every other run succeeds.
        let marker = scratch.appendingPathComponent("seen").path
        let script = "if [ \"$JOBQ_JOB_ID\" = x0 ] && [ ! -e \(marker) ]; then touch \(marker); echo 'throttle 600ms' >&3; exit 1; fi; exit 0"
        var handlers = JobHandlers()
        handlers.register(name: "api", ExecHandler(executable: "/bin/sh", arguments: ["-c", script]))
        for i in 0..<3 { _ = try await queue.add(name: "api", payload: .json("{}"), options: .init(jobID: "x\(i)", attempts: 1)) }
        try await withWorker(queue, concurrency: 1, handlers: handlers) { _ in
            try await queue.expectEvents(.completed, count: 3, within: 30)
        }
        let job = try #require(try await queue.inspector.job("x0"))
        #expect(job.state == .completed && job.attemptsMade == 1, "attempts 1 and completed: the throttle used none")
        let requeue = try await queue.expectEvents(.waiting, job: "x0")
        #expect(requeue.first?.failure?.reason == "rateLimited" && requeue.first?.retryDelay == .milliseconds(600))
        #expect(ExecProtocolLine(parsing: "throttle 30s") == .throttle(.seconds(30)))
        #expect(ExecProtocolLine(parsing: "throttle 2s group") == .throttle(.seconds(2), group: true))
        for bad in ["throttle", "throttle 0", "throttle -1s", "throttle 2d", "throttle 5s extra", "throttle 5s group x"] {
            #expect(ExecProtocolLine(parsing: bad) == nil, "\(bad)")
        }
    }

    @Test("two workers × concurrency 8 against a cap of 3: never more than 3 run at once, and 3 do; a cap raised mid-run takes effect")
    func capAcrossWorkers() async throws {
        let queue = try await uniqueQueue()
        try await queue.inspector.setLimits(concurrency: .set(3))
        let probe = Probe()
        var handlers = JobHandlers()
        handlers.register(name: "j") { job, _ in
            probe.enter(job.id)
            defer { probe.leave() }
            try await Task.sleep(for: .milliseconds(40))
            return []
        }
        _ = try await queue.addBulk((0..<120).map { JobQueue.NewJob(name: "j", payload: .json("{}"), options: .init(jobID: "k\($0)")) })
        try await withWorker(queue, concurrency: 8, handlers: handlers) { _ in
            try await withWorker(queue, concurrency: 8, handlers: handlers) { _ in
                try await queue.expectEvents(.completed, count: 60, within: 60)
                #expect(probe.maxRunning <= 3, "the cap holds across both workers: \(probe.maxRunning)")
                #expect(probe.maxRunning == 3, "and is reached")
                try await queue.inspector.setLimits(concurrency: .set(6))
                try await eventually(30, "6 running under the raised cap") { probe.maxRunning == 6 }
                try await queue.expectEvents(.completed, count: 120, within: 60)
            }
        }
        #expect(probe.maxRunning <= 6 && probe.totalRuns == 120)
    }
}

/// One worker paused, resumed and resized at run time, by its id (`docs/flow-control.md`).
@Suite("Worker control at run time", .awaitedTeardown)
struct WorkerControlTests {
    /// Running handlers now, and the most at once since the last `mark()`.
    final class Window: Sendable {
        private let state = Mutex<(running: Int, most: Int, started: Int)>((0, 0, 0))
        func enter() {
            state.withLock { s in
                s.running += 1
                s.started += 1
                s.most = max(s.most, s.running)
            }
        }
        func leave() { state.withLock { $0.running -= 1 } }
        func mark() { state.withLock { $0.most = $0.running } }
        var running: Int { state.withLock { $0.running } }
        var most: Int { state.withLock { $0.most } }
        var started: Int { state.withLock { $0.started } }
    }

    static func handlers(_ window: Window) -> JobHandlers {
        var handlers = JobHandlers()
        handlers.register(name: "j") { _, _ in
            window.enter()
            defer { window.leave() }
            try await Task.sleep(for: .milliseconds(60))
            return []
        }
        return handlers
    }

    static func info(_ client: RedisClient, _ id: String) async throws -> WorkerInfo? {
        try await WorkerInfo.list(client: client).first { $0.id == id }
    }

    @Test("pause by id is quiet (running jobs finish, none starts, the queue stays open to others); resume takes again; the list shows the state")
    func pauseAndResume() async throws {
        let queue = try await uniqueQueue()
        let window = Window()
        _ = try await queue.addBulk((0..<200).map { _ in JobQueue.NewJob(name: "j", payload: .json("{}")) })
        try await withWorker(queue, concurrency: 3, lease: .seconds(1), handlers: Self.handlers(window)) { worker in
            let id = worker.configuration.workerID
            try await queue.expectEvents(.completed, count: 3)
            let heard = try await WorkerInfo.pause(id, client: queue.client)
            #expect(heard >= 1, "the worker hears the nudge on the control channel")
            try await eventually(20, "the worker pauses") { worker.isPaused }
            // A finish under way at the pause may take one more job in its slot; once the slots
            // in use are down to 0 (the heartbeat reads state and count at once) they stay so.
            try await eventually(20, "running jobs finish") {
                guard let info = try await Self.info(queue.client, id) else { return false }
                return info.state == "paused" && info.active == 0
            }
            let startedWhilePaused = window.started
            // Two heartbeats later (event-driven, no sleep), still nothing started.
            let seen = try await Self.info(queue.client, id)?.lastSeen ?? .distantPast
            try await eventually(20, "two more beats") {
                guard let info = try await Self.info(queue.client, id), let last = info.lastSeen else { return false }
                return info.state == "paused" && last.timeIntervalSince(seen) >= 0.6
            }
            #expect(window.started == startedWhilePaused, "a paused worker takes nothing")
            let counts = try await queue.inspector.counts()
            #expect(counts.active == 0 && !counts.paused, "the queue itself is not paused")
            #expect(worker.pause() == false, "already paused")
            try await WorkerInfo.resume(id, client: queue.client)
            try await eventually(20, "the worker resumes and takes again") { window.started > startedWhilePaused + 3 }
            try await eventually(20, "listed as running again") { try await Self.info(queue.client, id)?.state == "running" }
            #expect(!worker.isPaused)
        }
        await #expect(throws: JobQError.self) { try await WorkerInfo.pause("no-such-worker", client: queue.client) }
    }

    @Test("concurrency by id: raised, more jobs run at once; lowered, no more than the new number once running jobs end; out of range is refused")
    func resize() async throws {
        let queue = try await uniqueQueue()
        let window = Window()
        _ = try await queue.addBulk((0..<400).map { _ in JobQueue.NewJob(name: "j", payload: .json("{}")) })
        try await withWorker(queue, concurrency: 1, lease: .seconds(1), handlers: Self.handlers(window)) { worker in
            let id = worker.configuration.workerID
            try await queue.expectEvents(.completed, count: 2)
            #expect(window.most <= 1)
            try await WorkerInfo.setConcurrency(id, to: 5, client: queue.client)
            try await eventually(20, "5 run at once") { window.most == 5 }
            #expect(worker.concurrency == 5)
            try await eventually(20, "the heartbeat reports 5") { try await Self.info(queue.client, id)?.concurrency == 5 }
            try await WorkerInfo.setConcurrency(id, to: 2, client: queue.client)
            // A run whose finish was under way at the change may take one more job in its slot;
            // once the slots in use are down to 2 (the heartbeat reads both at once) they stay so.
            try await eventually(20, "the slots in use drop to 2") {
                guard let info = try await Self.info(queue.client, id) else { return false }
                return info.concurrency == 2 && info.active <= 2
            }
            window.mark()
            try await queue.expectEvents(.completed, count: 60, within: 60)
            #expect(window.most <= 2, "no more than 2 at once after lowering: \(window.most)")
            await #expect(throws: JobQError.self) { try await WorkerInfo.setConcurrency(id, to: 0, client: queue.client) }
            #expect(throws: JobQError.self) { try worker.setConcurrency(20_000) }
        }
    }
}
