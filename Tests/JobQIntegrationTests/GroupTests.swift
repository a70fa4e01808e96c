import Foundation
import Synchronization
import Testing

@testable import JobQ
@testable import JobQRedis

/// Groups (`docs/flow-control.md`): jobs of one queue split by tenant, taken in turn, each
/// group under its own limits, paused and counted on its own.
@Suite("Flow control: groups", .awaitedTeardown)
struct GroupTests {
    /// Takes one job and answers its id and its lease.
    static func take(_ queue: JobQueue) async throws -> (id: String, lease: QueueCore.Lease)? {
        guard let (job, lease) = try await queue.takeJob() else { return nil }
        return (job.id, lease)
    }

    static func add(_ queue: JobQueue, _ id: String, group: String?, priority: Int = 0) async throws {
        _ = try await queue.add(name: "j", payload: .json("{}"), options: .init(jobID: id, priority: JobPriority(priority), group: group))
    }

    @Test("takes rotate over the groups in turn; jobs without a group go first; priorities order jobs inside a group")
    func rotation() async throws {
        let queue = try await uniqueQueue()
        for i in 0..<3 { try await Self.add(queue, "a\(i)", group: "A") }
        try await Self.add(queue, "a-urgent", group: "A", priority: 5)
        for i in 0..<2 { try await Self.add(queue, "b\(i)", group: "B") }
        try await Self.add(queue, "c0", group: "C {hostile} ✓ :w:")
        try await Self.add(queue, "plain", group: nil)
        var order: [String] = []
        for _ in 0..<8 { if let t = try await Self.take(queue) { order.append(t.id) } }
        #expect(order == ["plain", "a-urgent", "b0", "c0", "a0", "b1", "a1", "a2"], "\(order)")
        #expect(try await Self.take(queue) == nil)
        let job = try #require(try await queue.inspector.job("c0"))
        #expect(job.options.group == "C {hostile} ✓ :w:", "the group is in the record")
        let counts = try await queue.inspector.counts()
        #expect(counts.waiting == 0 && counts.active == 8 && counts.groups == 3)
    }

    @Test("group concurrency: a group at its cap leaves the rotation, the others go on; a finish brings it back and wakes a fetcher")
    func groupConcurrency() async throws {
        let queue = try await uniqueQueue()
        try await queue.inspector.setLimits(groupConcurrency: .set(1))
        for i in 0..<3 { try await Self.add(queue, "a\(i)", group: "A") }
        for i in 0..<2 { try await Self.add(queue, "b\(i)", group: "B") }
        let a0 = try #require(try await Self.take(queue))
        let b0 = try #require(try await Self.take(queue))
        #expect(a0.id == "a0" && b0.id == "b0")
        guard case .limited(let wait, let limit) = try await queue.core.take(lease: JobQueue.testLease()) else {
            Issue.record("both groups are at their cap of 1: the take is refused")
            return
        }
        #expect(wait == nil && limit == "group", "held for a slot: woken by a finish, not a timer")
        #expect(try await queue.members(queue.core.keys.marker).isEmpty, "the refused take leaves fetchers asleep")
        var counts = try await queue.inspector.counts()
        #expect(counts.limitedBy == "group" && counts.waitingForLimit == 3 && counts.groupsHeld == 2 && counts.groupsReady == 0)
        #expect(counts.limits.groupConcurrency == 1)
        let a = try await queue.inspector.group("A")
        #expect(a.waiting == 2 && a.active == 1 && a.status == .blocked && a.concurrency == 1 && !a.hasOwnLimits)
        // A finish of a0 (not taking the next job) frees A's slot: A rejoins, the marker is set.
        _ = try await queue.core.finish(a0.id, token: a0.lease.token, end: .completed(result: []), next: nil)
        #expect(try await queue.members(queue.core.keys.marker) == ["0"], "the freed group slot wakes a fetcher")
        #expect(try await Self.take(queue)?.id == "a1")
        // A group of its own: B gets 2 slots, whatever the default.
        try await queue.inspector.setGroupLimits("B", concurrency: .set(2))
        #expect(try await Self.take(queue)?.id == "b1", "B's own cap of 2 lets its second job start")
        let b = try await queue.inspector.group("B")
        #expect(b.concurrency == 2 && b.hasOwnLimits && b.active == 2)
        // Lifting the default: A's last job starts at once.
        try await queue.inspector.setLimits(groupConcurrency: .off)
        #expect(try await Self.take(queue)?.id == "a2")
        counts = try await queue.inspector.counts()
        #expect(counts.waiting == 0 && counts.active == 4 && counts.limitedBy == nil)
    }

    @Test("group rate: a group that spent its rate waits for its window while the others run; a refusal says when to come back")
    func groupRate() async throws {
        let queue = try await uniqueQueue()
        try await queue.inspector.setGroupLimits("A", rate: .set(RateLimit(2, per: .seconds(5))))
        for i in 0..<4 { try await Self.add(queue, "a\(i)", group: "A") }
        for i in 0..<2 { try await Self.add(queue, "b\(i)", group: "B") }
        var order: [String] = []
        for _ in 0..<4 { if let t = try await Self.take(queue) { order.append(t.id) } }
        #expect(order == ["a0", "b0", "a1", "b1"], "\(order)")
        guard case .limited(let wait?, "group") = try await queue.core.take(lease: JobQueue.testLease()) else {
            Issue.record("A spent 2 starts of its 5 s window: refused, with a time")
            return
        }
        #expect(wait > 0 && wait <= 5000, "\(wait)")
        let a = try await queue.inspector.group("A")
        #expect(a.status == .later && a.startsInWindow == 2 && a.rate == RateLimit(2, per: .seconds(5)) && (a.heldForMs ?? -1) > 0)
        // The override lifted: A runs at once (the queue's default has no rate).
        try await queue.inspector.setGroupLimits("A", clearingAll: true)
        #expect(try await Self.take(queue)?.id == "a2")
        // `off` for one group beats a default.
        try await queue.inspector.setLimits(groupRate: .set(RateLimit(1, per: .seconds(60))))
        try await queue.inspector.setGroupLimits("A", rate: .off)
        #expect(try await Self.take(queue)?.id == "a3")
        #expect(try await queue.inspector.limits().groupRate == RateLimit(1, per: .seconds(60)))
    }

    @Test("more held groups in the rotation than one take checks: the take says come back at once (marker set), and the next finds the group that may start")
    func manyHeldGroups() async throws {
        let queue = try await uniqueQueue()
        try await queue.inspector.setLimits(groupConcurrency: .set(1))
        for g in 0..<60 {
            for j in 0..<2 { try await Self.add(queue, "g\(g)-\(j)", group: "G\(g)") }
        }
        var taken: [String: QueueCore.Lease] = [:]
        for _ in 0..<60 {
            let t = try #require(try await Self.take(queue))
            taken[t.id] = t.lease
        }
        #expect(taken.count == 60 && taken.keys.allSatisfy { $0.hasSuffix("-0") }, "one job of each group")
        // A changed default puts all 60 back in the rotation; the last in turn may start again.
        try await queue.inspector.setLimits(groupRate: .set(RateLimit(1000, per: .seconds(1))))
        let ready = queue.core.keys.groupPrefix + "ready"
        let lastGroup = try #require(try await queue.client.send(RedisCommand("ZRANGE", ready, -1, -1)).array?.first?.string)
        #expect(try await queue.client.send(RedisCommand("ZCARD", ready)).int == 60)
        let first = "g\(lastGroup.dropFirst())-0"
        let lease = try #require(taken[first])
        _ = try await queue.core.finish(first, token: lease.token, end: .completed(result: []), next: nil)
        guard case .limited(let wait, "group") = try await queue.core.take(lease: JobQueue.testLease()) else {
            Issue.record("50 held groups checked, none could start")
            return
        }
        #expect(wait == 0, "come back at once, not when a slot frees")
        #expect(try await queue.members(queue.core.keys.marker) == ["0"], "and the marker wakes a fetcher")
        #expect(try await Self.take(queue)?.id == "g\(lastGroup.dropFirst())-1", "the next take reaches the group that may start")
    }

    @Test("pause one group: its jobs wait, the others run; adds go on; resume brings it back")
    func pauseGroup() async throws {
        let queue = try await uniqueQueue()
        for i in 0..<2 { try await Self.add(queue, "a\(i)", group: "A") }
        try await Self.add(queue, "b0", group: "B")
        #expect(try await queue.inspector.pauseGroup("A"))
        #expect(try await !queue.inspector.pauseGroup("A"), "already paused")
        try await Self.add(queue, "a2", group: "A")
        #expect(try await Self.take(queue)?.id == "b0")
        guard case .limited(nil, "group") = try await queue.core.take(lease: JobQueue.testLease()) else {
            Issue.record("only the paused group has jobs")
            return
        }
        let a = try await queue.inspector.group("A")
        #expect(a.paused && a.waiting == 3 && a.status == .blocked)
        #expect(try await queue.inspector.resumeGroup("A"))
        #expect(try await queue.members(queue.core.keys.marker) == ["0"], "resume wakes a fetcher")
        #expect(try await Self.take(queue)?.id == "a0")
        #expect(try await !queue.inspector.resumeGroup("A"), "not paused")
    }

    @Test("cancel, remove, remove by name, retry, purge and the reaper keep each group's line and counts right")
    func operatorActions() async throws {
        let queue = try await uniqueQueue()
        let inspector = queue.inspector
        for i in 0..<4 { try await Self.add(queue, "a\(i)", group: "A") }
        _ = try await queue.add(name: "other", payload: .json("{}"), options: .init(jobID: "a-other", group: "A"))
        try await Self.add(queue, "b0", group: "B")
        #expect(try await inspector.counts().waiting == 6)
        let listed = try await inspector.jobs(state: .waiting).map(\.id)
        #expect(listed == ["a0", "a1", "a2", "a3", "a-other", "b0"], "waiting jobs list the groups' lines: \(listed)")
        #expect(try await inspector.jobs(state: .waiting, group: "B").map(\.id) == ["b0"])
        #expect(try await inspector.jobs(state: .waiting, limit: 2, offset: 4).map(\.id) == ["a-other", "b0"])
        _ = try await queue.cancel("a0", reason: "test")
        #expect(try await inspector.remove(["a1"]) == [.removed(from: .waiting)])
        #expect(try await inspector.removeJobs(named: "other") == 1)
        #expect(try await inspector.group("A").waiting == 2)
        // The reaper: a run of A whose lease ran out goes back to A's line, and A's slot frees.
        try await inspector.setLimits(groupConcurrency: .set(1))
        let taken = try #require(try await queue.takeJob(JobQueue.testLease(.milliseconds(1))))
        #expect(taken.0.id == "a2")
        #expect(try await Self.take(queue)?.id == "b0")
        try await eventually(10, "the lease of a2 runs out") {
            let r = try await queue.core.call(queue.core.recoverStalledCall(batch: 10, holder: "t", lockMs: 0))
            return r.requeued == 1
        }
        var a = try await inspector.group("A")
        #expect(a.active == 0 && a.waiting == 2 && a.status == .ready)
        let again = try #require(try await queue.takeJob())
        #expect(again.0.id == "a2" || again.0.id == "a3")
        _ = try await queue.core.finish(again.0.id, token: again.1.token, end: .failed(reason: "x", details: "", retryDelayMs: -1), next: nil)
        #expect(try await inspector.retry([again.0.id]) == [.retried])
        a = try await inspector.group("A")
        #expect(a.waiting == 2 && a.active == 0)
        #expect(try await inspector.purge() == 2)
        let counts = try await inspector.counts()
        #expect(counts.waiting == 0 && counts.groupsHeld == 0 && counts.groupsReady == 0)
        #expect(try await inspector.groups().map(\.group) == ["B"], "A has nothing left; B still runs b0")
        try await inspector.setLimits(clearingAll: true)
        _ = try await inspector.pause()
        _ = try await inspector.obliterate(force: true)
        #expect(try await queue.allKeys().isEmpty, "obliterate leaves no key of a group behind")
    }

    @Test("backpressure counts the groups' jobs; an add to a held group does not wake fetchers for nothing")
    func backpressureAndWakeups() async throws {
        let queue = try await uniqueQueue()
        try await queue.inspector.setLimits(maxWaiting: .set(3), groupConcurrency: .set(1))
        for i in 0..<3 { try await Self.add(queue, "a\(i)", group: "A") }
        await #expect(throws: JobQError.self) { try await Self.add(queue, "a3", group: "A") }
        _ = try #require(try await Self.take(queue))
        try await Self.add(queue, "a3", group: "A")
        try await queue.inspector.setLimits(maxWaiting: .off)
        // A is at its cap: the refused take put it aside, and later adds leave the marker alone.
        guard case .limited = try await queue.core.take(lease: JobQueue.testLease()) else {
            Issue.record("A is at its cap")
            return
        }
        try await Self.add(queue, "a4", group: "A")
        #expect(try await queue.members(queue.core.keys.marker).isEmpty, "nothing of A can start: no wake-up")
        await #expect(throws: JobQError.self) { try await Self.add(queue, "bad", group: "") }
        await #expect(throws: JobQError.self) { try await Self.add(queue, "bad", group: "line\nbreak") }
        await #expect(throws: JobQError.self) { try await Self.add(queue, "bad", group: String(repeating: "g", count: 257)) }
    }

    @Test("RateLimited(scope: .group) throttles the job's group only: the other group keeps running, the job reruns first")
    func groupThrottle() async throws {
        let queue = try await uniqueQueue()
        try await queue.inspector.setRetention(completed: 100)
        let starts = Mutex<[String: Int]>([:])
        var handlers = JobHandlers()
        handlers.register(name: "j") { job, _ in
            let n = starts.withLock { s in
                s[job.id, default: 0] += 1
                return s[job.id]!
            }
            if job.id == "a0" && n == 1 { throw RateLimited(retryAfter: .seconds(2), scope: .group) }
            return []
        }
        try await Self.add(queue, "a0", group: "A")
        try await Self.add(queue, "a1", group: "A")
        for i in 0..<3 { try await Self.add(queue, "b\(i)", group: "B") }
        try await withWorker(queue, concurrency: 1, handlers: handlers) { _ in
            try await queue.expectEvents(.completed, count: 5, within: 30)
        }
        var completedOrder: [String] = []
        var requeuedAt: Int?
        var aStart: Int?
        for try await element in queue.events(from: .beginning) {
            guard case .event(let event) = element else { continue }
            let ms = Int(event.streamID.split(separator: "-")[0])!
            if event.kind == .completed { completedOrder.append(event.jobID) }
            if event.kind == .waiting, event.failure?.reason == "rateLimited" { requeuedAt = ms }
            if event.kind == .active, requeuedAt != nil, event.jobID.hasPrefix("a"), aStart == nil { aStart = ms }
            if completedOrder.count == 5 { break }
        }
        #expect(Array(completedOrder.prefix(3)) == ["b0", "b1", "b2"], "B ran on while A was throttled: \(completedOrder)")
        #expect(completedOrder.suffix(2) == ["a0", "a1"], "a0 reran first in its group")
        let gap = try #require(aStart) - (try #require(requeuedAt))
        #expect(gap >= 1999, "no start of A inside its throttle: \(gap) ms")
        let job = try #require(try await queue.inspector.job("a0"))
        #expect(job.attemptsMade == 1)
        let left = try await queue.inspector.groups().map(\.group)
        #expect(left.isEmpty, "a throttle that ended leaves no settings behind, so no group stays known: \(left)")
    }

    @Test("fairness: A holds 10,000 jobs and B 100, group concurrency 2: all of B finishes before A has run 300")
    func fairness() async throws {
        let queue = try await uniqueQueue()
        try await queue.inspector.setLimits(groupConcurrency: .set(2))
        try await queue.inspector.setRetention(completed: 0)
        let log = Mutex<(aStarted: Int, aStartedWhenBDone: Int?, bDone: Int)>((0, nil, 0))
        var handlers = JobHandlers()
        handlers.register(name: "j") { job, _ in
            if job.options.group == "A" { log.withLock { $0.aStarted += 1 } }
            try await Task.sleep(for: .milliseconds(2))
            if job.options.group == "B" {
                log.withLock { l in
                    l.bDone += 1
                    if l.bDone == 100 { l.aStartedWhenBDone = l.aStarted }
                }
            }
            return []
        }
        var bulk: [JobQueue.NewJob] = []
        for i in 0..<10_000 { bulk.append(.init(name: "j", payload: .json("{}"), options: .init(jobID: "a\(i)", group: "A"))) }
        for i in 0..<100 { bulk.append(.init(name: "j", payload: .json("{}"), options: .init(jobID: "b\(i)", group: "B"))) }
        _ = try await queue.addBulk(bulk)
        #expect(try await queue.inspector.counts().waiting == 10_100)
        try await withWorker(queue, concurrency: 8, handlers: handlers) { _ in
            try await eventually(120, "B's 100 jobs done") { log.withLock { $0.bDone } == 100 }
        }
        let aRan = try #require(log.withLock { $0.aStartedWhenBDone })
        #expect(aRan < 300, "A had started \(aRan) jobs when B's last finished")
        #expect(aRan >= 90, "A was not starved either: \(aRan)")
        _ = try await queue.inspector.purge()
    }
}
