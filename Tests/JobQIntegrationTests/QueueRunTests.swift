import Foundation
import LocalRedis
import Testing

@testable import JobQ
@testable import JobQRedis

@Suite("Queue: taking and finishing jobs", .awaitedTeardown)
struct QueueRunTests {
    @Test("take: highest priority first, FIFO inside a priority, over 1,000 jobs")
    func priorityAndFIFO() async throws {
        let queue = try await uniqueQueue()
        let priorities = [JobPriority.low, .normal, .high, 5, -1000, 1000]
        var jobs: [JobQueue.NewJob] = []
        for i in 0..<1000 {
            jobs.append(.init(name: "j", payload: .json(#"{"i":\#(i)}"#), options: .init(jobID: "job-\(i)", priority: priorities[(i * 7) % priorities.count])))
        }
        _ = try await queue.addBulk(jobs)
        // Cancelling waiting jobs takes them out of line, prioritized or not.
        #expect(try await queue.cancel("job-0") == .cancelled)
        #expect(try await queue.cancel("job-1") == .cancelled)
        let listed = try await queue.inspector.jobs(state: .waiting, limit: 2000).map(\.id)
        let paged = try await queue.inspector.jobs(state: .waiting, limit: 100, offset: 450).map(\.id)
        #expect(listed.count == 998 && paged == Array(listed[450..<550]))
        var taken: [(priority: Int, index: Int)] = []
        for _ in 0..<1001 {
            guard let (job, _) = try await queue.takeJob() else { break }
            taken.append((job.options.priority.value, Int(job.id.dropFirst(4))!))
        }
        #expect(taken.count == 998)
        #expect(taken.map { "job-\($0.index)" } == listed, "the listing shows waiting jobs in run order")
        for (a, b) in zip(taken, taken.dropFirst()) {
            #expect(a.priority > b.priority || (a.priority == b.priority && a.index < b.index), "\(a) before \(b)")
        }
        #expect(try await queue.inspector.counts().active == 998)
    }

    @Test("take: the job goes active under the lease token with attempt 1; an empty queue says so")
    func take() async throws {
        let queue = try await uniqueQueue()
        #expect(try await queue.takeJob() == nil)
        let added = try await queue.add(name: "x", payload: .json("{}"))
        let lease = JobQueue.testLease(.seconds(10))
        let (job, _) = try #require(try await queue.takeJob(lease))
        #expect(job.id == added.id && job.state == .active && job.attemptsMade == 1)
        #expect(job.executionID == lease.token && job.workerID == "test-worker")
        let stored = try #require(try await queue.inspector.job(added.id))
        #expect(stored.state == .active && stored.executionID == lease.token && stored.startedAt != nil)
        let score = try await queue.client.send("ZSCORE", queue.keys.active, added.id).string.flatMap(Double.init) ?? 0
        let leaseLeft = score / 1000 - Date().timeIntervalSince1970
        #expect(leaseLeft > 5 && leaseLeft < 15, "lease deadline = Redis now + 10 s")
        #expect(try await queue.eventKinds(for: added.id) == ["added", "active"])
        // Take re-arms the marker without counting what is left; the next empty take clears it.
        #expect(try await queue.client.send("ZCARD", queue.keys.marker) == .integer(1))
        #expect(try await queue.takeJob() == nil)
        #expect(try await queue.client.send("ZCARD", queue.keys.marker) == .integer(0), "an empty take clears the marker")
    }

    @Test("delayed jobs become runnable in due order; take reports when the next one is due")
    func delayedOrder() async throws {
        let queue = try await uniqueQueue()
        // Due times from one base, added in one script call: a loaded machine cannot let the
        // first ones come due while the last are still being added.
        let delays = [400, 100, 300, 200, 500]
        let base = Date().addingTimeInterval(1.5)
        let added = try await queue.addBulk(
            delays.enumerated().map { i, d in
                JobQueue.NewJob(name: "d", payload: .json("{}"), options: .init(jobID: "d\(i)", runAt: base.addingTimeInterval(Double(d) / 1000)))
            })
        #expect(try added.map { try $0.get().state } == Array(repeating: .delayed, count: 5))
        var order: [String] = []
        let deadline = ContinuousClock.now + .seconds(20)
        for _ in 0..<200 where order.count < delays.count && ContinuousClock.now < deadline {
            switch try await queue.core.take(lease: JobQueue.testLease()) {
            case .job(let job, _): order.append(job.id)
            case .empty(let nextDue):
                let wait = try #require(nextDue, "delayed jobs remain, so a next due time is reported")
                #expect(wait <= 2100)
                try await Task.sleep(for: .milliseconds(wait + 5))
            case .paused: Issue.record("not paused")
            case .limited: Issue.record("no limit is set")
            }
        }
        #expect(order == ["d1", "d3", "d2", "d0", "d4"])
        #expect(try await queue.eventKinds(for: "d1") == ["delayed", "waiting", "active"])
    }

    @Test("finish completes, stores the result and hands back the next job in the same call")
    func finishAndNext() async throws {
        let queue = try await uniqueQueue()
        let first = try await queue.add(name: "a", payload: .json("{}"))
        let second = try await queue.add(name: "b", payload: .json("{}"))
        let (job, lease) = try #require(try await queue.takeJob())
        #expect(job.id == first.id)
        let next = JobQueue.testLease()
        let finish = try await queue.core.finish(first.id, token: lease.token, end: .completed(result: Array("done".utf8)), next: next)
        guard case .applied(.completed, let take) = finish, case .job(let nextJob, _)? = take else {
            Issue.record("expected completed + next job, got \(finish)")
            return
        }
        #expect(nextJob.id == second.id && nextJob.executionID == next.token)
        let done = try #require(try await queue.inspector.job(first.id))
        #expect(done.state == .completed && done.resultText == "done" && done.finishedAt != nil)
        #expect(try await queue.members(queue.keys.completed) == [first.id])
        #expect(try await queue.eventKinds(for: first.id) == ["added", "active", "completed"])
        // A repeat of the same call is recognised; another token is refused.
        guard case .alreadyApplied(.completed) = try await queue.core.finish(first.id, token: lease.token, end: .completed(result: []), next: nil) else {
            Issue.record("repeat should be OK_ALREADY")
            return
        }
        guard case .leaseLost = try await queue.core.finish(second.id, token: "someone-else", end: .completed(result: []), next: nil) else {
            Issue.record("wrong token should be LEASE_LOST")
            return
        }
        #expect(try await queue.inspector.job(second.id)?.state == .active)
        guard case .notFound = try await queue.core.finish("nope", token: "t", end: .completed(result: []), next: nil) else {
            Issue.record("unknown job should be NOT_FOUND")
            return
        }
    }

    @Test("failures retry with the given delay until attempts are spent; the last error and the one before are kept")
    func retries() async throws {
        let queue = try await uniqueQueue()
        let added = try await queue.add(name: "flaky", payload: .json("{}"), options: .init(attempts: 3))
        // Run 1 fails: retried at once (delay 0) → waiting.
        var (_, lease) = try #require(try await queue.takeJob())
        guard
            case .applied(.waiting, _) = try await queue.core.finish(
                added.id, token: lease.token, end: .failed(reason: "E1", details: "first", retryDelayMs: 0), next: nil)
        else {
            Issue.record("run 1 should go back to waiting")
            return
        }
        // Run 2 fails with a delay → delayed.
        (_, lease) = try #require(try await queue.takeJob())
        guard
            case .applied(.delayed, _) = try await queue.core.finish(
                added.id, token: lease.token, end: .timeout(details: "took too long", retryDelayMs: 50), next: nil)
        else {
            Issue.record("run 2 should be delayed")
            return
        }
        var job = try #require(try await queue.inspector.job(added.id))
        #expect(job.attemptsMade == 2 && job.error?.reason == "timeout" && job.previousError?.reason == "E1" && job.dueAt != nil)
        // Run 3 (the last) fails → failed for good, whatever the delay.
        var third: (Job, QueueCore.Lease)?
        for _ in 0..<400 where third == nil {
            third = try await queue.takeJob()
            if third == nil { try await Task.sleep(for: .milliseconds(10)) }
        }
        let (run3, lease3) = try #require(third)
        #expect(run3.attemptsMade == 3)
        guard
            case .applied(.failed, _) = try await queue.core.finish(
                added.id, token: lease3.token, end: .failed(reason: "E3", details: "third", retryDelayMs: 10), next: nil)
        else {
            Issue.record("run 3 should fail the job")
            return
        }
        job = try #require(try await queue.inspector.job(added.id))
        #expect(job.state == .failed && job.error == .init(reason: "E3", details: "third") && job.previousError?.reason == "timeout")
        #expect(try await queue.eventKinds(for: added.id) == ["added", "active", "retrying", "active", "retrying", "waiting", "active", "failed"])

        // Unrecoverable: failed at once even with attempts left.
        let other = try await queue.add(name: "fatal", payload: .json("{}"), options: .init(attempts: 5))
        let (_, l) = try #require(try await queue.takeJob())
        guard case .applied(.failed, _) = try await queue.core.finish(other.id, token: l.token, end: .unrecoverable(reason: "Bad", details: "no"), next: nil)
        else {
            Issue.record("unrecoverable should fail at once")
            return
        }
    }

    @Test("outcome order: success beats a late cancel; a cancel beats errors and shutdown; shutdown uses no attempt")
    func outcomeOrder() async throws {
        let queue = try await uniqueQueue()
        // Success with a cancel request → completed, the request stays recorded.
        let a = try await queue.add(name: "a", payload: .json("{}"))
        let (_, la) = try #require(try await queue.takeJob())
        guard case .cancelRequested = try await queue.cancel(a.id, reason: "operator") else {
            Issue.record("active job: cancel requested")
            return
        }
        guard case .applied(.completed, _) = try await queue.core.finish(a.id, token: la.token, end: .completed(result: []), next: nil) else {
            Issue.record("a")
            return
        }
        #expect(try await queue.inspector.job(a.id)?.cancelRequested == true)
        // An error with a cancel request → cancelled, never retried.
        let b = try await queue.add(name: "b", payload: .json("{}"))
        let (_, lb) = try #require(try await queue.takeJob())
        _ = try await queue.cancel(b.id, reason: "stop it", requestedBy: "test")
        guard
            case .applied(.cancelled, _) = try await queue.core.finish(
                b.id, token: lb.token, end: .failed(reason: "E", details: "", retryDelayMs: 0), next: nil)
        else {
            Issue.record("b")
            return
        }
        let jb = try #require(try await queue.inspector.job(b.id))
        #expect(jb.cancelReason == "stop it" && jb.cancelRequestedBy == "test")
        // Shutdown → waiting with the attempt given back.
        let c = try await queue.add(name: "c", payload: .json("{}"))
        let (_, lc) = try #require(try await queue.takeJob())
        guard case .applied(.waiting, _) = try await queue.core.finish(c.id, token: lc.token, end: .shutdown, next: nil) else {
            Issue.record("c")
            return
        }
        #expect(try await queue.inspector.job(c.id)?.attemptsMade == 0)
        let (again, _) = try #require(try await queue.takeJob())
        #expect(again.id == c.id && again.attemptsMade == 1)
    }

    @Test("retention: after 100 finishes exactly 10 completed and 5 failed records remain, no orphan hashes")
    func retention() async throws {
        let queue = try await uniqueQueue()
        _ = try await queue.addBulk((0..<100).map { _ in JobQueue.NewJob(name: "r", payload: .json("{}")) })
        for i in 0..<100 {
            let (job, lease) = try #require(try await queue.takeJob())
            let end: QueueCore.RunEnd = i % 3 == 0 ? .unrecoverable(reason: "E", details: "") : .completed(result: [])
            _ = try await queue.core.finish(job.id, token: lease.token, end: end, next: nil)
        }
        let counts = try await queue.inspector.counts()
        #expect(counts.completed == 10 && counts.failed == 5 && counts.waiting == 0 && counts.active == 0)
        let jobKeys = try await queue.allKeys().filter { $0.hasPrefix(queue.keys.jobPrefix) }
        #expect(jobKeys.count == 15)
        let kept = Set(try await queue.members(queue.keys.completed) + queue.members(queue.keys.failed)).map { queue.keys.job($0) }
        #expect(Set(jobKeys) == Set(kept))
        // Per-queue limits, and a per-job override that drops its own record.
        try await queue.inspector.setRetention(completed: 2)
        let gone = try await queue.add(name: "r", payload: .json("{}"), options: .init(removeOnComplete: true))
        let (_, lease) = try #require(try await queue.takeJob())
        _ = try await queue.core.finish(gone.id, token: lease.token, end: .completed(result: []), next: nil)
        #expect(try await queue.inspector.job(gone.id) == nil)
        #expect(try await queue.inspector.counts().completed == 2)
    }

    @Test("leases: renewal extends and reports cancel requests; the reaper requeues, then fails a job that stalls twice")
    func leasesAndStalls() async throws {
        let queue = try await uniqueQueue()
        let added = try await queue.add(name: "s", payload: .json("{}"))
        let (_, lease) = try #require(try await queue.takeJob(JobQueue.testLease(.milliseconds(1))))
        // A token that is not the holder's is reported lost (runs are named by token).
        let renewal = try await queue.core.extendLeases([(added.id, "wrong")], length: .seconds(10))
        #expect(renewal.renewed == 0 && renewal.lost == ["wrong"])
        // Stall 1: back to waiting, stall counted, not an attempt.
        var recovered = (requeued: 0, failed: 0, cancelled: 0, remaining: 0)
        for _ in 0..<200 where recovered.requeued == 0 {
            recovered = try await queue.core.recoverStalled()
            if recovered.requeued == 0 { try await Task.sleep(for: .milliseconds(5)) }
        }
        #expect(recovered.requeued == 1 && recovered.remaining == 0)
        var job = try #require(try await queue.inspector.job(added.id))
        #expect(job.state == .waiting && job.stallCount == 1 && job.attemptsMade == 0, "the stalled run's attempt is given back")
        // The stalled run's late finish is refused.
        guard case .leaseLost = try await queue.core.finish(added.id, token: lease.token, end: .completed(result: []), next: nil) else {
            Issue.record("late finish must be LEASE_LOST")
            return
        }
        // Stall 2 exceeds maxStalls (1): failed with reason stalled.
        _ = try #require(try await queue.takeJob(JobQueue.testLease(.milliseconds(1))))
        recovered = (0, 0, 0, 0)
        for _ in 0..<200 where recovered.failed == 0 {
            recovered = try await queue.core.recoverStalled()
            if recovered.failed == 0 { try await Task.sleep(for: .milliseconds(5)) }
        }
        job = try #require(try await queue.inspector.job(added.id))
        #expect(job.state == .failed && job.error?.reason == "stalled" && job.stallCount == 2 && job.attemptsMade == 0)
        #expect(try await queue.eventKinds(for: added.id) == ["added", "active", "stalled", "active", "failed"])

        // Renewal reports a cancel request (the durable path).
        let c = try await queue.add(name: "c", payload: .json("{}"))
        let (_, lc) = try #require(try await queue.takeJob())
        _ = try await queue.cancel(c.id)
        let r = try await queue.core.extendLeases([(c.id, lc.token)], length: .seconds(10))
        #expect(r.renewed == 1 && r.cancelRequested == [lc.token])
    }

    @Test("pause stops take and removes the marker; resume re-arms it; adds go on while paused")
    func pause() async throws {
        let queue = try await uniqueQueue()
        _ = try await queue.add(name: "p", payload: .json("{}"))
        #expect(try await queue.inspector.pause())
        #expect(try await queue.inspector.pause() == false)
        #expect(try await queue.inspector.isPaused)
        guard case .paused = try await queue.core.take(lease: JobQueue.testLease()) else {
            Issue.record("take while paused")
            return
        }
        _ = try await queue.add(name: "p2", payload: .json("{}"))
        #expect(try await queue.inspector.counts().waiting == 2)
        #expect(try await queue.inspector.resume())
        #expect(try await queue.client.send("ZCARD", queue.keys.marker) == .integer(1))
        #expect(try await queue.takeJob() != nil)
    }

    @Test("progress and checkpoints are token-checked and land in the record")
    func progressAndCheckpoint() async throws {
        let queue = try await uniqueQueue()
        let added = try await queue.add(name: "p", payload: .json("{}"))
        let (_, lease) = try #require(try await queue.takeJob())
        #expect(try await queue.core.setProgress(added.id, token: lease.token, percent: 42.5, message: "halfway") == false)
        #expect(try await queue.core.saveCheckpoint(added.id, token: lease.token, bytes: [0, 1, 2]) == false)
        await #expect { _ = try await queue.core.setProgress(added.id, token: "other", percent: 1, message: "") } throws: {
            ($0 as? JobQError)?.code == .leaseLost
        }
        let job = try #require(try await queue.inspector.job(added.id))
        #expect(job.progress == .init(percent: 42.5, message: "halfway") && job.checkpoint == [0, 1, 2])
        await #expect { _ = try await queue.core.saveCheckpoint(added.id, token: lease.token, bytes: [UInt8](repeating: 0, count: (1 << 20) + 1)) } throws: {
            ($0 as? JobQError)?.code == .tooLarge
        }
    }
}
