import Foundation
import LocalRedis
import Synchronization
import Testing
@testable import JobQ

/// Issue 10, Sentinel mode: a real setup started by the test (1 primary, 1 replica, 3 sentinels,
/// `down-after` 1 s). Producers and a worker reach the primary through the sentinels
/// (`redis+sentinel://`), and keep going when it is replaced.
@Suite("Redis Sentinel", .serialized)
struct SentinelTests {
    struct Tally: Sendable { var acked: [String] = []; var refused = 0; var firstRefusal = "" }

    final class Flag: Sendable {
        private let value = Mutex(false)
        var isSet: Bool { value.withLock { $0 } }
        func set() { value.withLock { $0 = true } }
    }

    static func produce(_ q: JobQueue, stop: Flag, count: Int = 400) -> Task<Tally, Never> {
        Task {
            var t = Tally()
            for _ in 0..<count where !stop.isSet {
                do { t.acked.append(try await q.add(name: "work", payload: .json("{}")).id) } catch {
                    t.refused += 1
                    if t.firstRefusal.isEmpty { t.firstRefusal = "\(error)" }
                }
                try? await Task.sleep(for: .milliseconds(10))
            }
            return t
        }
    }

    static func handlers() -> JobHandlers {
        var handlers = JobHandlers()
        handlers.register(name: "work") { _, _ in
            try await Task.sleep(for: .milliseconds(2))
            return []
        }
        handlers.register(name: "long") { _, context in
            _ = await context.waitForCancellation()
            try context.checkCancellation()
            return []
        }
        return handlers
    }

    /// Waits until each acknowledged job has completed or is gone (lost in the failover) and
    /// nothing is waiting or running; returns how many are gone per queue.
    static func settle(_ queues: [JobQueue], _ tallies: [Tally]) async throws -> [Int] {
        let missingNow = Mutex([Int](repeating: 0, count: queues.count))
        for (i, (q, tally)) in zip(queues, tallies).enumerated() {
            try await eventually(60, "\(q.name)'s surviving jobs to complete") {
                var done = 0, missing = 0
                for id in tally.acked {
                    switch try await q.inspector.job(id)?.state {
                    case .completed?: done += 1
                    case nil: missing += 1
                    default: break
                    }
                }
                missingNow.withLock { $0[i] = missing }
                return done + missing == tally.acked.count
            }
            try await eventually(30, "\(q.name) has nothing waiting or running") {
                let counts = try await q.inspector.counts()
                return counts.waiting == 0 && counts.active == 0
            }
            let counts = try await q.inspector.counts()
            #expect(counts.failed == 0, "\(q.name): \(counts)")
        }
        return missingNow.withLock { $0 }
    }

    static func seconds(since start: ContinuousClock.Instant) -> Double {
        let d = ContinuousClock.now - start
        return ((Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18) * 100).rounded() / 100
    }

    @Test("the primary is killed mid-run: the sentinels promote the replica, producers and the worker follow, durable adds lose nothing, every job ends once; the old primary comes back as a replica")
    func killedPrimary() async throws {
        let setup = try await RedisSentinelProcess.start(replicas: 1, sentinels: 3)
        defer { Task { await setup.destroy() } }
        var configuration = setup.configuration
        configuration.retryDeadline = .seconds(30)
        let client = RedisClient(configuration: configuration)
        defer { Task { await client.close() } }
        let first = try #require(await setup.primary())
        #expect(first == setup.servers[0].endpoint)

        var durableSettings = QueueSettings()
        durableSettings.replicasToConfirmAdds = 1
        durableSettings.replicaConfirmTimeout = .seconds(1)
        let durable = try JobQueue(name: "sentinel-durable", client: client, settings: durableSettings)
        let plain = try JobQueue(name: "sentinel-plain", client: client)
        for q in [durable, plain] { try await q.inspector.setRetention(completed: 10_000) }

        var workerConfiguration = WorkerConfiguration(queues: [.init(durable.name), .init(plain.name)], concurrency: 8)
        workerConfiguration.lease = .seconds(3)
        workerConfiguration.maxBlockTimeout = .seconds(1)
        let worker = try Worker(client: client, configuration: workerConfiguration, handlers: Self.handlers())
        let running = Task { try await worker.run() }
        defer { worker.shutdown() }

        let stop = Flag()
        let producers = [Self.produce(durable, stop: stop), Self.produce(plain, stop: stop)]
        try await eventually(30, "jobs running before the kill") { try await durable.inspector.counts().completed >= 50 }
        let old = try #require(setup.server(at: first))
        let killedAt = ContinuousClock.now
        await old.kill()
        try await eventually(60, "the sentinels to name a new primary") {
            let now = await setup.primary()
            return now != nil && now != first
        }
        let promotedAfter = Self.seconds(since: killedAt)
        let second = try #require(await setup.primary())
        try await Task.sleep(for: .seconds(2))   // adds go on against the new primary for a while
        stop.set()
        let tallies = [await producers[0].value, await producers[1].value]
        let lost = try await Self.settle([durable, plain], tallies)

        // The client talks to the new primary; cancelling still works (the worker's subscription moved).
        #expect(try await client.send("ROLE").array?.first?.string == "master")
        let long = try await plain.add(name: "long", payload: .json("{}")).id
        try await eventually(30, "the long job to run after the failover") { try await plain.inspector.job(long)?.state == .active }
        _ = try await plain.cancel(long)
        try await eventually(30, "the cancel after the failover") { try await plain.inspector.job(long)?.state == .cancelled }

        // The old primary restarts (empty: no persistence here) and the sentinels make it a replica
        // of the new one; the client is not drawn back to it.
        try await old.restart()
        try await eventually(30, "the old primary to rejoin as a replica") {
            let c = RedisClient(configuration: old.configuration)
            defer { Task { await c.close() } }
            let info = (try? await c.send("INFO", "replication"))?.string ?? ""
            return info.contains("role:slave") && info.contains("master_link_status:up")
        }
        #expect(await setup.primary() == second)
        let after = try await plain.add(name: "work", payload: .json("{}")).id
        try await eventually(30, "a job added after the old primary rejoined to complete") { try await plain.inspector.job(after)?.state == .completed }

        print("sentinel failover (kill -9 of the primary): new primary named after \(promotedAfter) s; durable adds acked \(tallies[0].acked.count), refused \(tallies[0].refused) (no replica left to confirm), lost \(lost[0]); plain adds acked \(tallies[1].acked.count), refused \(tallies[1].refused), lost \(lost[1])")
        #expect(lost[0] == 0, "a durable add confirmed by a replica survives the failover")
        #expect(tallies[1].refused == 0, "plain adds ride through the failover: \(tallies[1].firstRefusal)")
        worker.shutdown()
        try await running.value
    }

    @Test("SENTINEL FAILOVER with the primary alive: it is demoted to a replica; +switch-master and READONLY move every connection to the new primary; durable adds lose nothing, plain adds lost are counted; every job ends once")
    func demotedPrimary() async throws {
        let setup = try await RedisSentinelProcess.start(replicas: 1, sentinels: 3)
        defer { Task { await setup.destroy() } }
        var configuration = setup.configuration
        configuration.retryDeadline = .seconds(30)
        let client = RedisClient(configuration: configuration)
        defer { Task { await client.close() } }
        let first = try #require(await setup.primary())
        var durableSettings = QueueSettings()
        durableSettings.replicasToConfirmAdds = 1
        durableSettings.replicaConfirmTimeout = .seconds(1)
        let durable = try JobQueue(name: "switch-durable", client: client, settings: durableSettings)
        let plain = try JobQueue(name: "switch-plain", client: client)
        for q in [durable, plain] { try await q.inspector.setRetention(completed: 10_000) }

        var workerConfiguration = WorkerConfiguration(queues: [.init(durable.name), .init(plain.name)], concurrency: 8)
        workerConfiguration.lease = .seconds(3)
        workerConfiguration.maxBlockTimeout = .seconds(1)
        let worker = try Worker(client: client, configuration: workerConfiguration, handlers: Self.handlers())
        let running = Task { try await worker.run() }
        defer { worker.shutdown() }

        let stop = Flag()
        let producers = [Self.produce(durable, stop: stop), Self.produce(plain, stop: stop)]
        try await eventually(30, "jobs running before the switch") { try await plain.inspector.counts().completed >= 50 }
        let sentinel = RedisClient(configuration: setup.sentinels[0].configuration)
        defer { Task { await sentinel.close() } }
        let started = ContinuousClock.now
        let reply = try await sentinel.send("SENTINEL", "FAILOVER", setup.masterName)
        #expect(reply.errorMessage == nil, "SENTINEL FAILOVER: \(reply)")
        try await eventually(60, "the sentinels to name the replica as primary") {
            let now = await setup.primary()
            return now != nil && now != first
        }
        let switchedAfter = Self.seconds(since: started)
        try await eventually(30, "the old primary to be demoted and in sync") {
            let c = RedisClient(configuration: try #require(setup.server(at: first)).configuration)
            defer { Task { await c.close() } }
            let info = (try? await c.send("INFO", "replication"))?.string ?? ""
            return info.contains("role:slave") && info.contains("master_link_status:up")
        }
        try await Task.sleep(for: .seconds(1))   // adds go on against the new primary (which has a replica again)
        stop.set()
        let tallies = [await producers[0].value, await producers[1].value]
        let lost = try await Self.settle([durable, plain], tallies)
        #expect(try await client.send("ROLE").array?.first?.string == "master", "the pool moved to the new primary")
        print("sentinel failover (SENTINEL FAILOVER, primary alive): switched after \(switchedAfter) s; durable adds acked \(tallies[0].acked.count), refused \(tallies[0].refused), lost \(lost[0]); plain adds acked \(tallies[1].acked.count), refused \(tallies[1].refused), lost \(lost[1]) (written to the old primary between the promotion and +switch-master)")
        #expect(lost[0] == 0, "a durable add confirmed by a replica survives the switch")
        #expect(tallies[1].refused == 0, "plain adds ride through the switch: \(tallies[1].firstRefusal)")
        worker.shutdown()
        try await running.value
    }

    @Test("a wrong primary name or no reachable sentinel fails within the deadline with a message naming the sentinels and the name")
    func misconfigured() async throws {
        let setup = try await RedisSentinelProcess.start(replicas: 0, sentinels: 1)
        defer { Task { await setup.destroy() } }
        var wrongName = setup.configuration
        wrongName.sentinel?.masterName = "no-such-primary"
        wrongName.retryDeadline = .milliseconds(300)
        let c1 = RedisClient(configuration: wrongName)
        defer { Task { await c1.close() } }
        await #expect {
            try await c1.ping()
        } throws: { error in
            let text = "\(error)"
            return text.contains("no-such-primary") && text.contains("sentinel")
        }
        var nobody = setup.configuration
        nobody.sentinel?.nodes = [.tcp(host: "127.0.0.1", port: try RedisServerProcess.freeLoopbackPort())]
        nobody.retryDeadline = .milliseconds(300)
        let c2 = RedisClient(configuration: nobody)
        defer { Task { await c2.close() } }
        await #expect(throws: RedisError.self) { try await c2.ping() }
        // The right name works through the same sentinel.
        let good = RedisClient(configuration: setup.configuration)
        defer { Task { await good.close() } }
        try await good.ping()
    }

    @Test("sentinels with a requirepass: without their password every connect fails at once with authFailed naming them; with it, commands reach the primary")
    func passwordedSentinels() async throws {
        let setup = try await RedisSentinelProcess.start(replicas: 1, sentinels: 3, sentinelPassword: "s3ntinel-secret")
        defer { Task { await setup.destroy() } }
        var without = setup.configuration
        without.sentinel?.password = nil
        let refused = RedisClient(configuration: without)
        defer { Task { await refused.close() } }
        let started = ContinuousClock.now
        await #expect {
            try await refused.ping()
        } throws: { error in
            guard let e = error as? RedisError else { return false }
            return e.code == .authFailed && e.detail.contains("sentinel") && !"\(e)".contains("s3ntinel-secret")
        }
        #expect(ContinuousClock.now - started < .seconds(10), "a refused password is not retried until the deadline")
        let client = RedisClient(configuration: setup.configuration)
        defer { Task { await client.close() } }
        let queue = try JobQueue(name: "sentinel-auth", client: client)
        let id = try await queue.add(name: "x", payload: .json("{}")).id
        #expect(try await queue.inspector.job(id)?.state == .waiting)
        #expect(!"\(setup.configuration)".contains("s3ntinel-secret"))
    }
}
