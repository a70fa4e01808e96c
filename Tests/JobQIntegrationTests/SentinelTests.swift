import Foundation
import LocalRedis
import Synchronization
import Testing

@testable import JobQ
@testable import JobQRedis

/// Sentinel mode: a real setup started by the test (1 primary, 1 replica, 3 sentinels,
/// `down-after` 1 s). Producers and a worker reach the primary through the sentinels
/// (`redis+sentinel://`), and keep going when it is replaced.
@Suite("Redis Sentinel", .serialized, .awaitedTeardown)
struct SentinelTests {
    /// 1 primary, 1 replica, 3 sentinels; a client that waits up to 30 s through a failover.
    static func start(tls: Bool = false) async throws -> (RedisSentinelProcess, RedisClient) {
        let serverTLS = tls ? RedisServerProcess.ServerTLS(certificates: try await TLSTests.certificates.value) : nil
        let setup = try await RedisSentinelProcess.start(replicas: 1, sentinels: 3, tls: serverTLS)
        var configuration = setup.configuration
        configuration.retryDeadline = .seconds(30)
        return (setup, RedisClient(configuration: configuration))
    }

    @Test(
        "the primary is killed mid-run: the sentinels promote the replica, producers and the worker follow, durable adds lose nothing, every job ends once; the old primary comes back as a replica (plain, and all over TLS)",
        arguments: [false, true])
    func killedPrimary(tls: Bool) async throws {
        let (setup, client) = try await Self.start(tls: tls)
        onTeardown {
            await client.close()
            await setup.destroy()
        }
        let first = try #require(await setup.primary())
        #expect(first == setup.servers[0].endpoint)
        if tls {
            #expect(setup.url.hasPrefix("rediss+sentinel://"))
            let port = try await client.send("CONFIG", "GET", "port").array?.last?.string
            #expect(port == "0", "the data nodes listen on TLS only (and so do the sentinels)")
        }

        let run = try await FailoverRun.start(client: client, durable: "sentinel-durable", plain: "sentinel-plain")
        defer { run.worker.shutdown() }
        let old = try #require(setup.server(at: first))
        let killedAt = ContinuousClock.now
        await old.kill()
        try await eventually(60, "the sentinels to name a new primary") {
            let now = await setup.primary()
            return now != nil && now != first
        }
        let promotedAfter = FailoverRun.seconds(since: killedAt)
        let second = try #require(await setup.primary())
        try await run.waitForMoreAdds(50)  // adds go on against the new primary
        let tallies = await run.stopProducing()
        let lost = try await run.settle(tallies)

        // The client talks to the new primary; cancelling still works (the worker's subscription moved).
        #expect(try await client.send("ROLE").array?.first?.string == "master")
        try await run.cancelStillArrives()

        // The old primary restarts (empty: no persistence here) and the sentinels make it a replica
        // of the new one; the client is not drawn back to it.
        try await old.restart()
        try await eventually(30, "the old primary to rejoin as a replica") {
            let c = RedisClient(configuration: old.configuration)
            onTeardown { await c.close() }
            let info = (try? await c.send("INFO", "replication"))?.string ?? ""
            return info.contains("role:slave") && info.contains("master_link_status:up")
        }
        #expect(await setup.primary() == second)
        let after = try await run.plain.add(name: "work", payload: .json("{}")).id
        try await eventually(30, "a job added after the old primary rejoined to complete") { try await run.plain.inspector.job(after)?.state == .completed }

        run.report("sentinel failover (kill -9 of the primary): new primary named after \(promotedAfter) s", tallies, lost: lost)
        try await run.finish()
    }

    @Test(
        "SENTINEL FAILOVER with the primary alive: it is demoted to a replica; +switch-master and READONLY move every connection to the new primary; durable adds lose nothing, plain adds lost are counted; every job ends once"
    )
    func demotedPrimary() async throws {
        let (setup, client) = try await Self.start()
        onTeardown {
            await client.close()
            await setup.destroy()
        }
        let first = try #require(await setup.primary())
        let run = try await FailoverRun.start(client: client, durable: "switch-durable", plain: "switch-plain")
        defer { run.worker.shutdown() }
        let sentinel = RedisClient(configuration: setup.sentinels[0].configuration)
        onTeardown { await sentinel.close() }
        let started = ContinuousClock.now
        let reply = try await sentinel.send("SENTINEL", "FAILOVER", setup.masterName)
        #expect(reply.errorMessage == nil, "SENTINEL FAILOVER: \(reply)")
        try await eventually(60, "the sentinels to name the replica as primary") {
            let now = await setup.primary()
            return now != nil && now != first
        }
        let switchedAfter = FailoverRun.seconds(since: started)
        try await eventually(30, "the old primary to be demoted and in sync") {
            let c = RedisClient(configuration: try #require(setup.server(at: first)).configuration)
            onTeardown { await c.close() }
            let info = (try? await c.send("INFO", "replication"))?.string ?? ""
            return info.contains("role:slave") && info.contains("master_link_status:up")
        }
        try await run.waitForMoreAdds(50)  // adds go on against the new primary (which has a replica again)
        let tallies = await run.stopProducing()
        let lost = try await run.settle(tallies)
        #expect(try await client.send("ROLE").array?.first?.string == "master", "the pool moved to the new primary")
        run.report(
            "sentinel failover (SENTINEL FAILOVER, primary alive): switched after \(switchedAfter) s; plain adds lost were written to the old primary between the promotion and +switch-master",
            tallies, lost: lost)
        try await run.finish()
    }

    @Test(
        "TLS data nodes behind plain sentinels: JOBQ_REDIS_SENTINEL_TLS_ENABLED=false reaches the primary over TLS; without it the sentinels' plain port is named"
    )
    func plainSentinelsTLSNodes() async throws {
        let certificates = try await TLSTests.certificates.value
        let setup = try await RedisSentinelProcess.start(
            replicas: 0, sentinels: 1, tls: RedisServerProcess.ServerTLS(certificates: certificates), plainSentinels: true)
        onTeardown { await setup.destroy() }
        #expect(setup.url.hasPrefix("rediss+sentinel://"))
        let base = ["JOBQ_REDIS_TLS_CA_FILE": certificates.caFile]
        var configuration = try RedisConfiguration.commandLine(
            urlFlag: setup.url, passwordFile: nil, environment: base.merging(["JOBQ_REDIS_SENTINEL_TLS_ENABLED": "false"]) { $1 })
        #expect(configuration.tls != nil && configuration.sentinel?.tls == nil)
        configuration.retryDeadline = .seconds(10)
        let client = RedisClient(configuration: configuration)
        onTeardown { await client.close() }
        let key = uniqueKey()
        #expect(try await client.send("SET", key, "over TLS") == .status("OK"))
        let session = try await client.tlsSession()
        #expect(session != nil, "the data connection is TLS")

        // The same URL without the setting: TLS to a plain sentinel fails, and says why.
        var both = try RedisConfiguration.commandLine(urlFlag: setup.url, passwordFile: nil, environment: base)
        #expect(both.sentinel?.tls != nil)
        both.retryDeadline = .seconds(2)
        both.connectTimeout = .seconds(1)
        let wrong = RedisClient(configuration: both)
        onTeardown { await wrong.close() }
        do {
            _ = try await wrong.send("PING")
            Issue.record("TLS to a plain sentinel answered")
        } catch {
            #expect(error.code == .unavailable || error.code == .tlsFailed || error.code == .connectionFailed, "\(error)")
        }
    }

    @Test("a wrong primary name or no reachable sentinel fails within the deadline with a message naming the sentinels and the name")
    func misconfigured() async throws {
        let setup = try await RedisSentinelProcess.start(replicas: 0, sentinels: 1)
        onTeardown { await setup.destroy() }
        var wrongName = setup.configuration
        wrongName.sentinel?.masterName = "no-such-primary"
        wrongName.retryDeadline = .milliseconds(300)
        let c1 = RedisClient(configuration: wrongName)
        onTeardown { await c1.close() }
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
        onTeardown { await c2.close() }
        await #expect(throws: RedisError.self) { try await c2.ping() }
        // The right name works through the same sentinel.
        let good = RedisClient(configuration: setup.configuration)
        onTeardown { await good.close() }
        try await good.ping()
    }

    @Test("sentinels with a requirepass: without their password every connect fails at once with authFailed naming them; with it, commands reach the primary")
    func passwordedSentinels() async throws {
        let setup = try await RedisSentinelProcess.start(replicas: 1, sentinels: 3, sentinelPassword: "s3ntinel-secret")
        onTeardown { await setup.destroy() }
        var without = setup.configuration
        without.sentinel?.password = nil
        let refused = RedisClient(configuration: without)
        onTeardown { await refused.close() }
        let started = ContinuousClock.now
        await #expect {
            try await refused.ping()
        } throws: { error in
            guard let e = error as? RedisError else { return false }
            return e.code == .authFailed && e.detail.contains("sentinel") && !"\(e)".contains("s3ntinel-secret")
        }
        #expect(ContinuousClock.now - started < .seconds(10), "a refused password is not retried until the deadline")
        let client = RedisClient(configuration: setup.configuration)
        onTeardown { await client.close() }
        let queue = try JobQueue(name: "sentinel-auth", client: client)
        let id = try await queue.add(name: "x", payload: .json("{}")).id
        #expect(try await queue.inspector.job(id)?.state == .waiting)
        #expect(!"\(setup.configuration)".contains("s3ntinel-secret"))
    }
}
