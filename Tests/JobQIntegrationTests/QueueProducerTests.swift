import Foundation
import LocalRedis
import Testing

@testable import JobQ
@testable import JobQRedis

@Suite("Queue: adding jobs", .awaitedTeardown)
struct QueueProducerTests {
    @Test("add: record, waiting set, marker and one `added` event; the same id again adds nothing")
    func addImmediate() async throws {
        let queue = try await uniqueQueue()
        let added = try await queue.add(name: "send-email", payload: .json(#"{"to":"a@example.com"}"#), options: .init(jobID: "order-1"))
        #expect(added == .init(id: "order-1", created: true, state: .waiting))
        let fields = try await queue.client.send(RedisCommand("HGETALL", queue.keys.job("order-1"))).array ?? []
        var map: [String: String] = [:]
        for i in stride(from: 0, to: fields.count - 1, by: 2) { map[fields[i].string!] = fields[i + 1].string! }
        #expect(map["s"] == "waiting")
        #expect(map["n"] == "send-email")
        #expect(map["d"] == #"{"to":"a@example.com"}"#)
        #expect(map["e"] == nil && map["a"] == nil && map["p"] == nil, "defaults are not stored")
        #expect(Set(map.keys) == ["s", "n", "d", "ct"])
        #expect(try await queue.members(queue.keys.wait) == ["order-1"])
        #expect(try await queue.client.send(RedisCommand("ZCARD", queue.keys.marker)) == .integer(1))
        #expect(try await queue.eventKinds(for: "order-1") == ["added"])
        #expect(try await queue.client.send(RedisCommand("SISMEMBER", QueueKeys.queueRegistry, queue.name)) == .integer(1))

        let again = try await queue.add(name: "other", payload: .json("{}"), options: .init(jobID: "order-1"))
        #expect(again == .init(id: "order-1", created: false, state: .waiting))
        #expect(try await queue.inspector.job("order-1")?.name == "send-email")
        #expect(try await queue.eventKinds(for: "order-1") == ["added"])

        let job = try #require(try await queue.inspector.job("order-1"))
        #expect(job.state == .waiting && job.attemptsMade == 0 && job.options == JobOptions(jobID: "order-1"))
        #expect(abs(job.createdAt.timeIntervalSinceNow) < 60)
    }

    @Test("add with a delay or a future runAt: delayed set scored by due time; binary payloads survive")
    func addDelayed() async throws {
        let queue = try await uniqueQueue()
        let payload: [UInt8] = [0, 1, 2, 0, 255, 13, 10]
        let a = try await queue.add(name: "later", payload: .bytes(payload), options: .init(delay: .seconds(60)))
        let b = try await queue.add(name: "at", payload: .json("{}"), options: .init(runAt: Date().addingTimeInterval(3600)))
        let c = try await queue.add(name: "past", payload: .json("{}"), options: .init(runAt: Date().addingTimeInterval(-10)))
        #expect(a.state == .delayed && b.state == .delayed && c.state == .waiting)
        let jobA = try #require(try await queue.inspector.job(a.id))
        #expect(jobA.payload == .bytes(payload))
        let due = try #require(jobA.dueAt)
        #expect(due.timeIntervalSince(jobA.createdAt) > 59.9 && due.timeIntervalSince(jobA.createdAt) < 60.1)
        #expect(try await queue.members(queue.keys.delayed) == [a.id, b.id])
        #expect(try await queue.eventKinds(for: a.id) == ["delayed"])
        let counts = try await queue.inspector.counts()
        #expect(counts.delayed == 2 && counts.waiting == 1)
    }

    @Test("bad input is refused before anything is written: oversized payload, names, ids, options")
    func refusals() async throws {
        var settings = QueueSettings()
        settings.maxPayloadBytes = 1 << 20
        let queue = try await uniqueQueue(settings: settings)
        await #expect { try await queue.add(name: "big", payload: .bytes([UInt8](repeating: 7, count: (1 << 20) + 1))) } throws: {
            ($0 as? JobQError)?.code == .tooLarge && "\($0)".contains("1048577 bytes")
        }
        await #expect { try await queue.add(name: "", payload: .json("{}")) } throws: { ($0 as? JobQError)?.code == .invalidJobName }
        await #expect { try await queue.add(name: "x", payload: .json("{}"), options: .init(jobID: JobID.generate())) } throws: {
            ($0 as? JobQError)?.code == .invalidJobID
        }
        await #expect { try await queue.add(name: "x", payload: .json("{}"), options: .init(priority: 5000)) } throws: {
            ($0 as? JobQError)?.code == .invalidOptions
        }
        #expect(try await queue.allKeys().isEmpty)
        let client = try await SharedRedis.client()
        for bad in ["", "a{b}", "line\nbreak", String(repeating: "q", count: 101)] {
            #expect { _ = try JobQueue(name: bad, client: client) } throws: { ($0 as? JobQError)?.code == .invalidQueueName }
        }
        // A 1 MiB payload exactly is fine.
        #expect(try await queue.add(name: "edge", payload: .bytes([UInt8](repeating: 0, count: 1 << 20))).created)
    }

    @Test("addBulk: 25,000 jobs (three flights) in one call, in order, a result per job; an invalid one fails alone")
    func bulk() async throws {
        let queue = try await uniqueQueue()
        var jobs = (0..<25_000).map { JobQueue.NewJob(name: "n", payload: .json(#"{"i":\#($0)}"#)) }
        jobs[5].name = ""
        jobs[12_345].name = ""
        let results = try await queue.addBulk(jobs)
        #expect(results.count == 25_000)
        let ids = results.compactMap { try? $0.get().id }
        #expect(ids.count == 24_998)
        for i in [5, 12_345] {
            if case .failure(let error) = results[i] { #expect(error.code == .invalidJobName) } else { Issue.record("job \(i) should fail") }
        }
        #expect(ids == ids.sorted(), "generated ids are time-ordered, results are in order")
        #expect(try await queue.inspector.counts().waiting == 24_998)
        #expect(try await queue.members(queue.keys.wait) == ids, "FIFO: the wait set holds them in add order")
    }

    @Test("addBulk: the jobs of one script call stand alone — a repeated id is added once, a failed write is undone for its job only")
    func bulkJobsStandAlone() async throws {
        let queue = try await uniqueQueue()
        // Group g1's waiting line is taken by a key of another type: a job of g1 cannot be queued.
        _ = try await queue.client.send(RedisCommand("SET", queue.keys.groupWaiting("g1"), "x"))
        let jobs = [
            JobQueue.NewJob(name: "a", payload: .json("{}"), options: .init(jobID: "same")),
            JobQueue.NewJob(name: "b", payload: .json("{}"), options: .init(jobID: "same")),
            JobQueue.NewJob(name: "c", payload: .json("{}"), options: .init(jobID: "grouped", group: "g1")),
            JobQueue.NewJob(name: "d", payload: .json("{}"), options: .init(jobID: "later", delay: .seconds(60))),
            JobQueue.NewJob(name: "e", payload: .json("{}"), options: .init(jobID: "last")),
        ]
        let results = try await queue.addBulk(jobs)
        #expect(try results[0].get().created && results[0].get().state == .waiting)
        #expect(try results[1].get() == .init(id: "same", created: false, state: .waiting), "the repeat in the same call adds nothing")
        if case .failure(let error) = results[2] { #expect(error.code == .keyConflict) } else { Issue.record("the grouped job should fail") }
        #expect(try results[3].get().state == .delayed)
        #expect(try results[4].get().created)
        #expect(try await queue.inspector.job("grouped") == nil, "nothing of the failed job is left")
        #expect(try await queue.inspector.job("same")?.name == "a")
        #expect(try await queue.members(queue.keys.wait) == ["same", "last"], "in add order")
        let events = try await queue.client.send(RedisCommand("XLEN", queue.keys.events)).int
        #expect(events == 3, "one event per job created")
    }

    @Test("dedup: 8 concurrent producers adding the same 200 ids create each job once")
    func dedup() async throws {
        let queue = try await uniqueQueue()
        let configuration = queue.client.configuration
        let name = queue.name
        let created = try await withThrowingTaskGroup(of: Int.self) { group in
            for p in 0..<8 {
                group.addTask {
                    let client = RedisClient(configuration: configuration)
                    onTeardown { await client.close() }
                    let producer = try JobQueue(name: name, client: client)
                    let jobs = (0..<200).map { JobQueue.NewJob(name: "p\(p)", payload: .json("{}"), options: .init(jobID: "dedup-\($0)")) }
                    return try await producer.addBulk(jobs).filter { (try? $0.get().created) == true }.count
                }
            }
            return try await group.reduce(0, +)
        }
        #expect(created == 200)
        #expect(try await queue.inspector.counts().waiting == 200)
        let events = try await queue.client.send(RedisCommand("XLEN", queue.keys.events)).int
        #expect(events == 200, "one added event per job, none for the duplicates")
    }

    @Test("a retried add after killed connections creates no duplicate and loses nothing")
    func retriedAdds() async throws {
        try await withPrivateRedis { server in
            let client = RedisClient(configuration: server.configuration)
            let killer = RedisClient(configuration: server.configuration)
            onTeardown {
                await client.close()
                await killer.close()
            }
            let queue = try JobQueue(name: "retried", client: client)
            var total = 0
            for round in 0..<5 {
                let jobs = (0..<2000).map { JobQueue.NewJob(name: "r\(round)", payload: .json(#"{"n":\#($0)}"#)) }
                async let results = queue.addBulk(jobs)
                _ = try await killer.send("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
                let all = try await results
                #expect(all.allSatisfy { (try? $0.get()) != nil }, "every add succeeded (resent after the cut)")
                total += all.count
            }
            #expect(try await queue.inspector.counts().waiting == total)
            #expect(try await client.send("XLEN", queue.keys.events).int == total)
        }
    }
}
