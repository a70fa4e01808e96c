import Foundation
import LocalRedis
import Testing

@testable import JobQ
@testable import JobQRedis

@Suite("Queue: cancel, remove, retry, purge, clean, obliterate, listings, events", .awaitedTeardown)
struct QueueAdminTests {
    @Test("cancel: waiting ends at once; active gets a stored request and a published message; finished and unknown say so")
    func cancel() async throws {
        let queue = try await uniqueQueue()
        let subscriber = RedisSubscriber(configuration: queue.client.configuration)
        onTeardown { await subscriber.close() }
        let events = EventReader(subscriber)
        try await subscriber.subscribe([queue.keys.cancelChannel])

        let waiting = try await queue.add(name: "w", payload: .json("{}"))
        let delayed = try await queue.add(name: "d", payload: .json("{}"), options: .init(delay: .seconds(60)))
        #expect(try await queue.cancel(waiting.id, reason: "not needed") == .cancelled)
        #expect(try await queue.cancel(delayed.id) == .cancelled)
        let w = try #require(try await queue.inspector.job(waiting.id))
        #expect(w.state == .cancelled && w.cancelReason == "not needed" && w.finishedAt != nil)
        #expect(try await queue.inspector.counts().waiting == 0)
        #expect(try await queue.eventKinds(for: waiting.id) == ["added", "cancelled"])

        let active = try await queue.add(name: "a", payload: .json("{}"))
        _ = try #require(try await queue.takeJob())
        #expect(try await queue.cancel(active.id) == .cancelRequested(listeners: 1))
        guard case .message(let channel, let payload) = try await events.next() else {
            Issue.record("no cancel message")
            return
        }
        #expect(channel == queue.keys.cancelChannel && payload == Array(active.id.utf8))
        #expect(try await queue.inspector.job(active.id)?.state == .active)

        #expect(try await queue.cancel(waiting.id) == .alreadyFinished(.cancelled))
        #expect(try await queue.cancel("no-such-job") == .notFound)
        // A cancelled job is never taken again.
        #expect(try await queue.takeJob() == nil)
    }

    @Test("remove: waiting and finished jobs go (an event stays); running ones are refused")
    func remove() async throws {
        let queue = try await uniqueQueue()
        let a = try await queue.add(name: "a", payload: .json("{}"))
        let b = try await queue.add(name: "b", payload: .json("{}"))
        _ = try #require(try await queue.takeJob())
        let outcomes = try await queue.inspector.remove([b.id, a.id, "ghost"])
        #expect(outcomes == [.removed(from: .waiting), .isActive, .notFound])
        #expect(try await queue.inspector.job(b.id) == nil)
        #expect(try await queue.eventKinds(for: b.id) == ["added", "removed"])
        #expect(try await queue.inspector.job(a.id)?.state == .active)
    }

    @Test("retry by id and all failed: attempts and stalls reset, previous error kept; others are refused")
    func retry() async throws {
        let queue = try await uniqueQueue()
        try await queue.inspector.setRetention(failed: 100)
        var failed: [String] = []
        for i in 0..<3 {
            let added = try await queue.add(name: "f", payload: .json("{}"))
            let (_, lease) = try #require(try await queue.takeJob())
            _ = try await queue.core.finish(added.id, token: lease.token, end: .unrecoverable(reason: "E\(i)", details: "d"), next: nil)
            failed.append(added.id)
        }
        let waiting = try await queue.add(name: "w", payload: .json("{}"))
        #expect(try await queue.inspector.retry([failed[0], waiting.id, "ghost"]) == [.retried, .wrongState, .notFound])
        let job = try #require(try await queue.inspector.job(failed[0]))
        #expect(job.state == .waiting && job.attemptsMade == 0 && job.error == nil && job.previousError?.reason == "E0")
        var batches = 0
        #expect(try await queue.inspector.retryAllFailed { _, _ in batches += 1 } == 2)
        #expect(batches == 1)
        #expect(try await queue.inspector.counts().waiting == 4)
    }

    @Test("purge, removeJobs(named:), listings with filters and paging, and the queue registry")
    func listingsAndPurge() async throws {
        let queue = try await uniqueQueue()
        for i in 0..<30 {
            _ = try await queue.add(name: i % 3 == 0 ? "report" : "email", payload: .json(#"{"i":\#(i)}"#), options: .init(jobID: "j\(i)"))
        }
        _ = try await queue.add(name: "report", payload: .json("{}"), options: .init(jobID: "later", delay: .seconds(60)))
        let page = try await queue.inspector.jobs(state: .waiting, limit: 5, offset: 2)
        #expect(page.map(\.id) == ["j2", "j3", "j4", "j5", "j6"])
        let reports = try await queue.inspector.jobs(state: .waiting, name: "report", limit: 3, offset: 1)
        #expect(reports.map(\.id) == ["j3", "j6", "j9"])
        #expect(try await queue.inspector.jobs(state: .waiting, createdBefore: Date().addingTimeInterval(-3600)).isEmpty)
        let all = try await QueueInspector.queues(client: queue.client)
        #expect(all.first { $0.name == queue.name }?.counts.waiting == 30)

        #expect(try await queue.inspector.removeJobs(named: "report") == 11)
        #expect(try await queue.inspector.counts().waiting == 20)
        #expect(try await queue.inspector.purge() == 20)
        let counts = try await queue.inspector.counts()
        #expect(counts.waiting == 0 && counts.delayed == 0)
        #expect(try await queue.allKeys().filter { $0.hasPrefix(queue.keys.jobPrefix) }.isEmpty)
    }

    @Test("events: an AsyncSequence of one event per state move; result(of:) waits for the outcome")
    func eventsAndResult() async throws {
        let queue = try await uniqueQueue()
        let added = try await queue.add(name: "e", payload: .json("{}"))
        async let outcome = queue.result(of: added.id, timeout: .seconds(30))
        let (_, lease) = try #require(try await queue.takeJob())
        _ = try await queue.core.setProgress(added.id, token: lease.token, percent: 50, message: "half")
        _ = try await queue.core.finish(added.id, token: lease.token, end: .completed(result: Array("ok".utf8)), next: nil)
        let events = queue.events(from: .beginning)
        let kinds = try await within(20, "four events") {
            var kinds: [String] = []
            for try await element in events {
                if case .event(let event) = element {
                    #expect(event.jobID == added.id)
                    if event.kind == .progress { #expect(event["pp"] == "50.0" && event["pm"] == "half") }
                    kinds.append(event.kind.description)
                }
                if kinds.count == 4 { break }
            }
            return kinds
        }
        #expect(kinds == ["added", "active", "progress", "completed"])
        #expect(try await outcome == .completed(result: Array("ok".utf8)))
        // A finished job answers at once; an unknown one is notFound.
        #expect(try await queue.result(of: added.id, timeout: .seconds(1)) == .completed(result: Array("ok".utf8)))
        await #expect { _ = try await queue.result(of: "ghost", timeout: .seconds(1)) } throws: { ($0 as? JobQError)?.code == .notFound }
    }

    @Test("events: a reader that fell behind the capped stream gets a gap with the exact number missed")
    func eventGap() async throws {
        var settings = QueueSettings()
        settings.eventsMaxLength = 10
        let queue = try await uniqueQueue(settings: settings)
        let reader = QueueEventReader(core: queue.core)
        onTeardown { await reader.close() }
        try await reader.start(at: .end)
        _ = try await queue.addBulk((0..<1000).map { _ in JobQueue.NewJob(name: "g", payload: .json("{}")) })
        var missed = 0
        var seen = 0
        for _ in 0..<100 {
            let batch = try await reader.next(wait: .milliseconds(10))
            if batch.isEmpty { break }
            for element in batch {
                switch element {
                case .gap(let n): missed += n
                case .event: seen += 1
                }
            }
        }
        #expect(missed > 0, "the stream was trimmed to about 10 entries")
        #expect(missed + seen == 1000, "every event is either read or counted as missed")
    }

    @Test("clean and obliterate of 100,000 jobs run in ≥ 100 bounded calls and leave nothing in SLOWLOG (200 ms)")
    func boundedBulkOperations() async throws {
        try await withPrivateRedis(.init(extraArguments: ["--slowlog-log-slower-than", "200000"])) { server in
            let client = RedisClient(configuration: server.configuration)
            onTeardown { await client.close() }
            let queue = try JobQueue(name: "bulk", client: client)
            // Seed 100,000 completed records directly (seeding, not a state move under test).
            for chunk in 0..<20 {
                var commands: [RedisCommand] = []
                for i in 0..<5000 {
                    let id = "c\(chunk * 5000 + i)"
                    commands.append(RedisCommand("HSET", queue.keys.job(id), "s", "completed", "n", "x", "d", "{}", "ct", 1, "ft", 1))
                    commands.append(RedisCommand("ZADD", queue.keys.completed, 1, id))
                }
                _ = try await client.pipeline(commands)
            }
            #expect(try await queue.inspector.counts().completed == 100_000)
            var calls: [(Int, Int)] = []
            let cleaned = try await queue.inspector.clean(state: .completed) { calls.append(($0, $1)) }
            #expect(cleaned == 100_000)
            #expect(calls.count >= 100 && calls.allSatisfy { $0.0 <= 1000 })
            #expect(calls.last?.1 == 0)

            _ = try await queue.addBulk((0..<100_000).map { _ in JobQueue.NewJob(name: "o", payload: .json("{}")) })
            await #expect { try await queue.inspector.obliterate() } throws: { ($0 as? JobQError)?.code == .notPaused }
            try await queue.inspector.pause()
            calls = []
            let deleted = try await queue.inspector.obliterate { calls.append(($0, $1)) }
            #expect(deleted == 100_000)
            #expect(calls.count >= 100 && calls.allSatisfy { $0.0 <= 1000 })
            #expect(try await queue.allKeys().isEmpty, "nothing of the queue is left")
            let slow = try await client.send("SLOWLOG", "GET", 10).array ?? []
            #expect(slow.isEmpty, "slow calls: \(slow)")
        }
    }
}
