import Foundation
import JobQ
import LocalRedis
import Testing

/// The shipped binaries on a cluster and behind Sentinel — nested in the serialized
/// `Executables` suite (it spawns processes).
extension ExecutableTests {
    @Suite("jobq-admin and jobq-worker on Cluster and Sentinel", .awaitedTeardown)
    struct ScaleOutCLI {
        @Test(
            "redis+cluster://: jobq-admin adds to queues on all 3 shards and lists them; a jobq-worker process serves them all; cancel reaches it by sharded pub/sub"
        )
        func cluster() async throws {
            let (cluster, client) = try await ClusterTests.start()
            onTeardown {
                await client.close()
                await cluster.destroy()
            }
            let names = try await ClusterTests.spreadQueues(cluster, client: client, perNode: 1, prefix: "cli")
            #expect(names.count == 3)
            for name in names {
                for _ in 0..<5 {
                    let added = try await runAdmin(["add", name, "e", "--data", "{}", "--redis-url", cluster.url])
                    #expect(added.code == 0, "\(added.err)")
                }
            }
            let listed = try await runAdmin(["queues", "--json", "--redis-url", cluster.url])
            #expect(listed.code == 0, "\(listed.err)")
            let rows = try #require(jsonArray(listed.out))
            #expect(Set(names).isSubset(of: Set(rows.compactMap { $0["queue"] as? String })), "\(listed.out)")

            let worker = try WorkerProcess(
                ["--redis-url", cluster.url, "--handler", "e=echo", "--handler", "slow=demo", "--lease", "3s"]
                    + names.flatMap { ["--queue", $0] })
            try await worker.waitForLog("worker started")
            for name in names {
                try await eventually(30, "\(name): 5 completed") {
                    let counts = try await runAdmin(["counts", name, "--json", "--redis-url", cluster.url])
                    return (jsonObject(counts.out)?["completed"] as? Int) == 5
                }
            }
            // A running job on the third shard, cancelled from jobq-admin.
            let queue = try JobQueue(name: names[2], client: client)
            let slow = try await queue.add(name: "slow", payload: .json(#"{"sleep_ms": 60000}"#)).id
            try await eventually(30, "the slow job to run") { try await queue.inspector.job(slow)?.state == .active }
            let cancel = try await runAdmin(["cancel", names[2], slow, "--redis-url", cluster.url])
            #expect(cancel.code == 0, "\(cancel.out) \(cancel.err)")
            try await eventually(20, "the cancel") { try await queue.inspector.job(slow)?.state == .cancelled }
            #expect(worker.log.contains("cancel requested"), "the token fired by the message, not later by a renewal: \(worker.log.suffix(2000))")
            worker.process.signal(SIGTERM)
            #expect(try await worker.exitCode() == 0, "\(worker.log.suffix(2000))")
        }

        @Test(
            "redis+sentinel:// with passworded sentinels: jobq-admin ping names the primary's version; a jobq-worker process runs jobs added through jobq-admin; the password comes from the environment and shows nowhere"
        )
        func sentinel() async throws {
            let secret = "sentinel-pw-\(UUID().uuidString.prefix(8))"
            let setup = try await RedisSentinelProcess.start(replicas: 1, sentinels: 3, sentinelPassword: secret)
            onTeardown { await setup.destroy() }
            let env = ["JOBQ_REDIS_SENTINEL_PASSWORD": secret]
            @Sendable func runAdmin(_ arguments: [String]) async throws -> ProgramRun {
                try await JobQIntegrationTests.runAdmin(arguments, environment: env)
            }
            let noPassword = try await JobQIntegrationTests.runAdmin(["ping", "--redis-url", setup.url])
            #expect(noPassword.code == 3 && noPassword.err.contains("sentinel"), "\(noPassword)")
            let ping = try await runAdmin(["ping", "--json", "--redis-url", setup.url])
            #expect(ping.code == 0, "\(ping.err)")
            #expect(jsonObject(ping.out)?["version"] as? String != nil, "\(ping.out)")
            let name = "cli-sentinel"
            for _ in 0..<5 {
                let added = try await runAdmin(["add", name, "e", "--data", "{}", "--redis-url", setup.url])
                #expect(added.code == 0, "\(added.err)")
            }
            let checked = try await runTool(
                "jobq-worker", ["--check-config", "--redis-url", setup.url, "--queue", name, "--handler", "e=echo"], environment: env)
            #expect(checked.code == 0 && !checked.output.contains(secret), "\(checked.output)")
            let worker = try WorkerProcess(["--redis-url", setup.url, "--queue", name, "--handler", "e=echo"], environment: env)
            try await worker.waitForLog("worker started")
            try await eventually(30, "5 completed") {
                let counts = try await runAdmin(["counts", name, "--json", "--redis-url", setup.url])
                return (jsonObject(counts.out)?["completed"] as? Int) == 5
            }
            // Written on the primary the sentinels name.
            let primary = try #require(await setup.primary())
            let direct = RedisClient(configuration: try #require(setup.server(at: primary)).configuration)
            onTeardown { await direct.close() }
            #expect(try await direct.send("ZCARD", "jobq:{\(name)}:completed").int == 5)
            #expect(!worker.log.contains(secret))
            worker.process.signal(SIGTERM)
            #expect(try await worker.exitCode() == 0, "\(worker.log.suffix(2000))")
        }
    }
}
