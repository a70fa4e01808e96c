import Foundation
import LocalRedis
import Synchronization
import Testing

@testable import JobQ
@testable import JobQRedis

/// jobq on a real 3-primary Redis Cluster started by the test — slots
/// computed like Redis, commands routed to the owning primary, queues on every shard served by
/// one worker, and a queue's slot migrated under load (MOVED, ASK, TRYAGAIN followed).
@Suite("Redis Cluster", .serialized, .awaitedTeardown)
struct ClusterTests {
    /// 3 primaries (with `replicas` each) and a cluster client.
    static func start(replicas: Int = 0, retryDeadline: Duration = .seconds(20), tls: Bool = false) async throws -> (RedisClusterProcess, RedisClient) {
        let serverTLS = tls ? RedisServerProcess.ServerTLS(certificates: try await TLSTests.certificates.value) : nil
        let cluster = try await RedisClusterProcess.start(primaries: 3, replicas: replicas, tls: serverTLS)
        var configuration = cluster.configuration
        configuration.retryDeadline = retryDeadline
        return (cluster, RedisClient(configuration: configuration))
    }

    /// Queue names whose slots land on each primary `perNode` times.
    static func spreadQueues(_ cluster: RedisClusterProcess, client: RedisClient, perNode: Int, prefix: String) async throws -> [String] {
        var chosen: [RedisEndpoint: [String]] = [:]
        let primaries = try await client.primaries()
        var i = 0
        while primaries.contains(where: { (chosen[$0]?.count ?? 0) < perNode }), i < 10_000 {
            let name = "\(prefix)-\(i)"
            i += 1
            let node = try await client.endpoint(forKey: "jobq:{\(name)}:wait")
            if (chosen[node]?.count ?? 0) < perNode { chosen[node, default: []].append(name) }
        }
        return chosen.values.flatMap { $0 }.sorted()
    }

    @Test("key slots match CLUSTER KEYSLOT for plain keys, hash tags, empty tags and binary keys")
    func slots() async throws {
        let cluster = try await RedisClusterProcess.start(primaries: 3)
        onTeardown { await cluster.destroy() }
        let node = RedisClient(configuration: cluster.nodes[0].configuration)
        onTeardown { await node.close() }
        var rng = SplitMix64(seed: 42)
        var keys = ["foo", "{user1000}.following", "foo{}{bar}", "foo{{bar}}zap", "foo{bar}{zap}", "{}", "jobq:{emails}:wait", "🎉", ""]
        for _ in 0..<200 {
            keys.append(String((0..<Int.random(in: 1...20, using: &rng)).map { _ in "ab{}c:🎉x".randomElement(using: &rng)! }))
        }
        for key in keys {
            let expected = try await node.send("CLUSTER", "KEYSLOT", key).int
            #expect(RedisClusterSlot.of(key) == expected, "\(key)")
        }
    }

    @Test(
        "6 queues over 3 shards: bulk and single adds, a delayed job and a cancel by sharded pub/sub on every shard; one worker serves them all; every job ends once; queues lists all six"
    )
    func queuesOnEveryShard() async throws {
        let (cluster, client) = try await Self.start()
        onTeardown {
            await client.close()
            await cluster.destroy()
        }
        let names = try await Self.spreadQueues(cluster, client: client, perNode: 2, prefix: "shard")
        #expect(names.count == 6)
        let queues = try names.map { try JobQueue(name: $0, client: client) }
        var ids: [String: [String]] = [:]
        for q in queues {
            try await q.inspector.setRetention(completed: 1000)
            let bulk = try await q.addBulk((0..<40).map { _ in JobQueue.NewJob(name: "work", payload: .json("{}")) })
            ids[q.name] = try bulk.map { try $0.get().id }
            ids[q.name]!.append(try await q.add(name: "work", payload: .json("{}"), options: .init(delay: .milliseconds(300))).id)
        }
        var longs: [String] = []
        var slows: [String] = []
        for q in queues {
            longs.append(try await q.add(name: "long", payload: .json("{}")).id)
            slows.append(try await q.add(name: "slow", payload: .json("{}")).id)
        }
        let slowRuns = Mutex([String: Int]())

        var handlers = JobHandlers()
        handlers.register(name: "work") { job, _ in Array(job.queue.utf8) }
        // Longer than the lease (3 s): it survives only if the lease service renews on every shard.
        handlers.register(name: "slow") { job, _ in
            slowRuns.withLock { $0[job.id, default: 0] += 1 }
            try await Task.sleep(for: .milliseconds(4500))
            return []
        }
        handlers.registerUntilCancelled(name: "long")
        var configuration = WorkerConfiguration(queues: names.map { .init($0) }, concurrency: 8)
        configuration.lease = .seconds(3)
        configuration.maxBlockTimeout = .seconds(1)
        let worker = try Worker(client: client, configuration: configuration, handlers: handlers)
        let running = Task { try await worker.run() }
        defer { worker.shutdown() }
        // Cancels go by sharded pub/sub: SPUBLISH on the queue's node reaches exactly the one
        // SSUBSCRIBE of the worker there (listeners: 1 on every shard).
        for (q, long) in zip(queues, longs) {
            try await eventually(30, "\(q.name)'s long job to run") { try await q.inspector.job(long)?.state == .active }
            let outcome = try await q.cancel(long)
            #expect(outcome == .cancelRequested(listeners: 1), "\(q.name): \(outcome)")
        }
        try await eventually(60, "252 jobs completed and one cancelled per queue") {
            var completed = 0
            for q in queues { completed += try await q.inspector.counts().completed }
            return completed == 252
        }
        #expect(slowRuns.withLock { $0 } == Dictionary(uniqueKeysWithValues: slows.map { ($0, 1) }), "each slow job ran once: leases renewed on every shard")
        for (q, slow) in zip(queues, slows) {
            #expect(try await q.inspector.job(slow)?.stallCount == 0, "\(q.name)")
        }
        for (q, long) in zip(queues, longs) {
            try await eventually(20, "the cancel on \(q.name)") { try await q.inspector.job(long)?.state == .cancelled }
        }
        for primary in try await client.primaries() {
            let node = RedisClient(configuration: cluster.configuration.node(primary))
            let stats = try await node.send("INFO", "commandstats").string ?? ""
            let channels = try await node.send("PUBSUB", "SHARDCHANNELS").array?.compactMap(\.string) ?? []
            await node.close()
            #expect(stats.contains("cmdstat_spublish") && !stats.contains("cmdstat_publish:"), "\(primary): cancels by SPUBLISH only")
            #expect(channels.count == 2, "\(primary) carries the cancel channels of its own two queues: \(channels)")
        }
        for q in queues {
            let counts = try await q.inspector.counts()
            #expect(counts.waiting == 0 && counts.active == 0 && counts.failed == 0, "\(q.name): \(counts)")
            let job = try #require(try await q.inspector.job(ids[q.name]![3]))
            #expect(job.resultText == q.name)
        }
        let listed = try await QueueInspector.queues(client: client).map(\.name)
        #expect(Set(names).isSubset(of: Set(listed)), "\(listed)")
        worker.shutdown()
        try await running.value
    }

    @Test("a queue's slot migrates to another primary while jobs are added and run: nothing lost, every job ends once")
    func slotMigration() async throws {
        let (cluster, client) = try await Self.start()
        onTeardown {
            await client.close()
            await cluster.destroy()
        }
        let name = "migrating-\(UUID().uuidString.prefix(6))"
        let queue = try JobQueue(name: name, client: client)
        try await queue.inspector.setRetention(completed: 10_000)
        let slot = RedisClusterSlot.of("jobq:{\(name)}:wait")
        let source = try await client.endpoint(forKey: "jobq:{\(name)}:wait")
        let primaries = try await client.primaries()
        let target = try #require(primaries.first { $0 != source })
        func direct(_ e: RedisEndpoint) -> RedisClient { RedisClient(configuration: cluster.configuration.node(e)) }
        let from = direct(source)
        let to = direct(target)
        let others = primaries.map(direct)
        onTeardown {
            await from.close()
            await to.close()
            for o in others { await o.close() }
        }
        let fromID = try #require(try await from.send("CLUSTER", "MYID").string)
        let toID = try #require(try await to.send("CLUSTER", "MYID").string)

        let completed = Mutex(0)
        var handlers = JobHandlers()
        handlers.register(name: "work") { _, _ in
            try await Task.sleep(for: .milliseconds(5))
            completed.withLock { $0 += 1 }
            return []
        }
        var configuration = WorkerConfiguration(queues: [.init(name)], concurrency: 4)
        configuration.lease = .seconds(3)
        configuration.maxBlockTimeout = .seconds(1)
        let worker = try Worker(client: client, configuration: configuration, handlers: handlers)
        let running = Task { try await worker.run() }
        defer { worker.shutdown() }

        // A producer adds 300 jobs, one at a time, across the migration.
        let producer = Task {
            var added: [String] = []
            for _ in 0..<300 {
                added.append(try await queue.add(name: "work", payload: .json("{}")).id)
                try await Task.sleep(for: .milliseconds(5))
            }
            return added
        }
        try await eventually(20, "some jobs done before the migration") { completed.withLock { $0 } >= 20 }

        // The migration, by hand, as `redis-cli --cluster reshard` does it for one slot.
        _ = try await to.send("CLUSTER", "SETSLOT", slot, "IMPORTING", fromID)
        _ = try await from.send("CLUSTER", "SETSLOT", slot, "MIGRATING", toID)
        guard case .tcp(let host, let port) = target else {
            Issue.record("tcp expected")
            return
        }
        for _ in 0..<1000 {
            let keys = try await from.send("CLUSTER", "GETKEYSINSLOT", slot, 50).array?.compactMap(\.string) ?? []
            if keys.isEmpty { break }
            let reply = try await from.send(RedisCommand("MIGRATE", arguments: [host, port, "", 0, 5000, "KEYS"] + keys))
            #expect(reply.errorMessage == nil, "MIGRATE: \(reply)")
            try await Task.sleep(for: .milliseconds(20))  // let commands meet the half-moved slot
        }
        for o in others { _ = try await o.send("CLUSTER", "SETSLOT", slot, "NODE", toID) }

        let added = try await producer.value
        try await eventually(60, "all 300 jobs completed after the migration") { try await queue.inspector.counts().completed == 300 }
        #expect(try await client.endpoint(forKey: "jobq:{\(name)}:wait") == target, "the client learned the new owner")
        // The old owner redirected us (and refused scripts on the half-moved slot): we followed.
        let errors = try await from.send("INFO", "errorstats").string ?? ""
        #expect(errors.contains("errorstat_MOVED"), "\(errors)")
        let counts = try await queue.inspector.counts()
        #expect(counts.waiting == 0 && counts.active == 0 && counts.failed == 0, "\(counts)")
        for id in added.prefix(20) { #expect(try await queue.inspector.job(id)?.state == .completed) }
        worker.shutdown()
        try await running.value
    }

    @Test("over TLS, nodes found through CLUSTER SLOTS are verified by the host name they announce (cluster-announce-hostname), not their address")
    func announcedHostnames() async throws {
        let certificates = try await TLSTests.certificates.value
        let name = TestCertificates.namedHost
        // Node 0 (the seed) has the certificate for 127.0.0.1; the others only one for their
        // announced name, so a connection verifying their address fails.
        let cluster = try await RedisClusterProcess.start(primaries: 3, tls: RedisServerProcess.ServerTLS(certificates: certificates)) { i, options in
            guard i > 0 else { return }
            options.tls?.certFile = certificates.namedHostCertFile
            options.tls?.serverName = name
            options.extraArguments += ["--cluster-announce-hostname", name]
        }
        var configuration = cluster.configuration
        configuration.clusterSeeds = [cluster.nodes[0].endpoint]
        configuration.tls = certificates.clientTLS(withClientCertificate: false)
        let client = RedisClient(configuration: configuration)
        onTeardown {
            await client.close()
            await cluster.destroy()
        }
        // The certificates are what this test says: by address, node 1 fails the host check.
        var direct = RedisConfiguration(endpoint: cluster.nodes[1].endpoint)
        direct.tls = configuration.tls
        direct.retryDeadline = .seconds(2)
        let probe = RedisClient(configuration: direct)
        await #expect(throws: RedisError.self) { _ = try await probe.send("PING") }
        #expect(probe.connectionProblem?.code == .tlsFailed, "\(String(describing: probe.connectionProblem))")
        await probe.close()
        // Through the cluster client, a queue on every primary works end to end.
        let names = try await Self.spreadQueues(cluster, client: client, perNode: 1, prefix: "announced")
        #expect(names.count == 3)
        for queueName in names {
            let queue = try JobQueue(name: queueName, client: client)
            let added = try await queue.add(name: "n", payload: .json("{}"))
            #expect(try await queue.inspector.job(added.id)?.state == .waiting, "queue \(queueName)")
        }
    }

    @Test(
        "redis-cli --cluster reshard moves a queue's slot while a producer adds and a worker runs: nothing lost, each job runs once, cancels still arrive (plain, and TLS with tls-cluster yes)",
        arguments: [false, true])
    func reshardByRedisCLI(tls: Bool) async throws {
        let (cluster, client) = try await Self.start(tls: tls)
        onTeardown {
            await client.close()
            await cluster.destroy()
        }
        // reshard moves a source's lowest slots first: pick a queue living in such a slot.
        let primaries = try await client.primaries()
        let source = primaries[0]
        let lowest = try #require(await cluster.lowestSlot(of: source))
        var name = ""
        for i in 0..<400_000 where RedisClusterSlot.of("jobq:{reshard-\(i)}:wait") == lowest {
            name = "reshard-\(i)"
            break
        }
        try #require(!name.isEmpty, "a queue name in slot \(lowest)")
        if tls {
            // Every node listens on TLS only, and CLUSTER SLOTS names those ports.
            #expect(cluster.url.hasPrefix("rediss+cluster://"))
            let port = try await client.send("CONFIG", "GET", "port").array?.last?.string
            #expect(port == "0", "TLS only")
        }
        let target = primaries[1]
        let queue = try JobQueue(name: name, client: client)
        try await queue.inspector.setRetention(completed: 10_000)

        let runs = Mutex([String: Int]())
        var handlers = JobHandlers()
        handlers.register(name: "work") { job, _ in
            runs.withLock { $0[job.id, default: 0] += 1 }
            try await Task.sleep(for: .milliseconds(3))
            return []
        }
        handlers.registerUntilCancelled(name: "long")
        var configuration = WorkerConfiguration(queues: [.init(name)], concurrency: 8)
        configuration.lease = .seconds(3)
        configuration.maxBlockTimeout = .seconds(1)
        let worker = try Worker(client: client, configuration: configuration, handlers: handlers)
        let running = Task { try await worker.run() }
        defer { worker.shutdown() }
        // A backlog of delayed and waiting jobs, so there are keys to move, and a steady producer.
        for _ in 0..<100 { _ = try await queue.add(name: "work", payload: .json("{}"), options: .init(delay: .seconds(2))) }
        let producer = Task {
            var added: [String] = []
            for _ in 0..<400 {
                added.append(try await queue.add(name: "work", payload: .json("{}")).id)
                try await Task.sleep(for: .milliseconds(5))
            }
            return added
        }
        try await eventually(20, "some jobs done before the reshard") { runs.withLock { $0.count } >= 30 }
        let (status, output) = try await cluster.reshard(from: source, to: target, slots: 1)
        #expect(status == 0, "redis-cli --cluster reshard: \(output.suffix(800))")
        #expect(await cluster.owner(ofSlot: lowest) == target, "the queue's slot moved")
        let added = try await producer.value
        try await eventually(60, "all 500 jobs completed after the reshard") { try await queue.inspector.counts().completed == 500 }
        #expect(try await client.endpoint(forKey: "jobq:{\(name)}:wait") == target, "the client learned the new owner")
        let counts = try await queue.inspector.counts()
        #expect(counts.waiting == 0 && counts.active == 0 && counts.delayed == 0 && counts.failed == 0, "\(counts)")
        #expect(runs.withLock { $0.values.allSatisfy { $0 == 1 } && $0.count == 500 }, "each job ran once")
        for id in added.suffix(20) { #expect(try await queue.inspector.job(id)?.state == .completed) }
        // The worker's cancel subscription followed the slot to its new node.
        let long = try await queue.add(name: "long", payload: .json("{}")).id
        try await eventually(30, "the long job to run") { try await queue.inspector.job(long)?.state == .active }
        let outcome = try await queue.cancel(long)
        #expect(outcome == .cancelRequested(listeners: 1), "\(outcome)")
        try await eventually(20, "the cancel") { try await queue.inspector.job(long)?.state == .cancelled }
        worker.shutdown()
        try await running.value
    }

    @Test(
        "a primary is killed mid-run and its replica promoted: the client follows, every surviving job ends once, durable adds lose nothing; plain adds lost are counted"
    )
    func failover() async throws {
        let (cluster, client) = try await Self.start(replicas: 1, retryDeadline: .seconds(30))
        onTeardown {
            await client.close()
            await cluster.destroy()
        }
        // Two queues on the same primary: one with durable adds (WAIT 1), one without.
        // The first seed's node, a primary: the worker's subscription sits there too, so it must move.
        let primaries = try await client.primaries()
        let victim: RedisEndpoint? = primaries.contains(cluster.nodes[0].endpoint) ? cluster.nodes[0].endpoint : primaries.first
        var names: [String] = []
        for i in 0..<10_000 where names.count < 2 {
            let name = "fo-\(i)"
            if try await client.endpoint(forKey: "jobq:{\(name)}:wait") == victim { names.append(name) }
        }
        let victimEndpoint = try #require(victim)
        let victimNode = try #require(cluster.nodes.first { $0.endpoint == victimEndpoint })
        let run = try await FailoverRun.start(client: client, durable: names[0], plain: names[1])
        defer { run.worker.shutdown() }
        let killedAt = ContinuousClock.now
        await victimNode.kill()
        let slot = RedisClusterSlot.of("jobq:{\(names[0])}:wait")
        try await eventually(60, "a replica promoted for the killed primary's slots") {
            let owner = await cluster.owner(ofSlot: slot)
            return owner != nil && owner != victimEndpoint
        }
        let promotedAfter = FailoverRun.seconds(since: killedAt)
        try await run.waitForMoreAdds(50)  // adds go on against the promoted primary
        let tallies = await run.stopProducing()
        let lost = try await run.settle(tallies)
        try await run.cancelStillArrives()
        run.report("cluster failover: replica promoted after \(promotedAfter) s", tallies, lost: lost)
        try await run.finish()
    }

    @Test(
        "CLUSTER FAILOVER (coordinated, the primary alive) mid-run: the replica takes over after catching up; clients follow MOVED from the demoted node; nothing is lost, every job ends once"
    )
    func coordinatedFailover() async throws {
        let (cluster, client) = try await Self.start(replicas: 1, retryDeadline: .seconds(30))
        onTeardown {
            await client.close()
            await cluster.destroy()
        }
        let names = try await Self.spreadQueues(cluster, client: client, perNode: 2, prefix: "cf")
        let owner = try await client.endpoint(forKey: "jobq:{\(names[0])}:wait")
        let pair = try await names.asyncFilter { try await client.endpoint(forKey: "jobq:{\($0)}:wait") == owner }
        #expect(pair.count == 2)
        // The owner's replica: the node whose INFO replication names the owner's port.
        guard case .tcp(_, let ownerPort) = owner else {
            Issue.record("tcp expected")
            return
        }
        var replica: RedisServerProcess?
        for node in cluster.nodes where node.endpoint != owner {
            let c = RedisClient(configuration: node.configuration)
            let info = (try? await c.send("INFO", "replication"))?.string ?? ""
            await c.close()
            if info.contains("role:slave") && info.contains("master_port:\(ownerPort)") { replica = node }
        }
        let promoted = try #require(replica)
        let run = try await FailoverRun.start(client: client, durable: pair[0], plain: pair[1])
        defer { run.worker.shutdown() }
        let direct = RedisClient(configuration: promoted.configuration)
        onTeardown { await direct.close() }
        let started = ContinuousClock.now
        let reply = try await direct.send("CLUSTER", "FAILOVER")
        #expect(reply.errorMessage == nil, "CLUSTER FAILOVER: \(reply)")
        let slot = RedisClusterSlot.of("jobq:{\(pair[0])}:wait")
        try await eventually(60, "the replica to own the slot") { await cluster.owner(ofSlot: slot) == promoted.endpoint }
        let switchedAfter = FailoverRun.seconds(since: started)
        try await run.waitForMoreAdds(50)
        let tallies = await run.stopProducing()
        let lost = try await run.settle(tallies)
        try await run.cancelStillArrives()
        run.report("cluster failover (CLUSTER FAILOVER, coordinated): switched after \(switchedAfter) s", tallies, lost: lost)
        #expect(lost[1] == 0, "a coordinated failover waits for the replica to catch up: no plain add lost either")
        try await run.finish()
    }
}

extension Sequence where Element: Sendable {
    func asyncFilter(_ keep: (Element) async throws -> Bool) async rethrows -> [Element] {
        var out: [Element] = []
        for e in self where try await keep(e) { out.append(e) }
        return out
    }
}
