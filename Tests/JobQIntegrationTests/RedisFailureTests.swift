import Foundation
import JobQ
import LocalRedis
import Testing

/// Tests that touch a whole server (restart, SCRIPT FLUSH, CLIENT KILL, CONFIG SET, ACL): each on
/// a private server.
@Suite("Redis failures and recovery, on private servers", .awaitedTeardown)
struct RedisFailureTests {
    @Test("NOSCRIPT after SCRIPT FLUSH falls back to EVAL, also inside a pipeline")
    func noscriptFallback() async throws {
        try await withPrivateRedis { server in
            let client = RedisClient(configuration: server.configuration)
            onTeardown { await client.close() }
            let script = RedisScript(name: "incrBy-1", source: "return redis.call('INCRBY', KEYS[1], ARGV[1])", keyCount: 1)
            try await client.load([script])
            #expect(try await client.run(script, keys: ["n"], arguments: [1]) == .integer(1))
            #expect(try await client.send("SCRIPT", "FLUSH") == .status("OK"))
            #expect(try await client.send("SCRIPT", "EXISTS", script.sha!) == .array([.integer(0)]))
            var batch = RedisBatch()
            for _ in 0..<100 { batch.append(script, keys: ["n"], arguments: [1]) }
            let replies = try await client.execute(batch)
            #expect(replies == (2...101).map { .integer(Int64($0)) })
            #expect(try await client.send("SCRIPT", "EXISTS", script.sha!) == .array([.integer(1)]))
            #expect(try await client.run(script, keys: ["n"], arguments: [1]) == .integer(102))
        }
    }

    @Test("a script whose SHA was learned on another server is loaded ahead of its first EVALSHA here: no NOSCRIPT, so a pipeline runs in order")
    func scriptLoadedAheadOnNewServer() async throws {
        try await withPrivateRedis { first in
            try await withPrivateRedis { second in
                let one = RedisClient(configuration: first.configuration)
                let two = RedisClient(configuration: second.configuration)
                onTeardown {
                    await one.close()
                    await two.close()
                }
                let script = RedisScript(name: "push-1", source: "return redis.call('RPUSH', KEYS[1], ARGV[1])", keyCount: 1)
                try await one.load([script])
                #expect(script.sha != nil)
                // The second server has never seen it; a NOSCRIPT there would be resent after the
                // rest of the flight (out of order if another client loaded it meanwhile).
                var batch = RedisBatch()
                for i in 0..<100 { batch.append(script, keys: ["l"], arguments: [i]) }
                let replies = try await two.execute(batch)
                #expect(replies == (1...100).map { .integer(Int64($0)) })
                let errors = try await two.send("INFO", "errorstats").string ?? ""
                #expect(!errors.contains("NOSCRIPT"), "\(errors)")
                #expect(try await two.send("LRANGE", "l", 0, -1) == .array((0..<100).map { .bulk(Array(String($0).utf8)) }))
            }
        }
    }

    @Test("after the server is killed and restarted, the client reconnects and reloads scripts")
    func reconnectAfterRestart() async throws {
        try await withPrivateRedis { server in
            var configuration = server.configuration
            configuration.retryDeadline = .seconds(20)
            let client = RedisClient(configuration: configuration)
            onTeardown { await client.close() }
            let script = RedisScript(name: "get-1", source: "return redis.call('GET', KEYS[1])", keyCount: 1)
            try await client.load([script])
            _ = try await client.send("SET", "k", "before")
            await server.kill()
            try await server.restart()
            // The socket the client holds is dead: the command goes out on a new connection.
            #expect(try await client.send("GET", "k") == .null)
            _ = try await client.send("SET", "k", "after")
            #expect(try await client.run(script, keys: ["k"], arguments: []) == .bulk(Array("after".utf8)))
        }
    }

    @Test("commands wait through a short outage and are sent once the server is back")
    func waitsThroughOutage() async throws {
        try await withPrivateRedis { server in
            var configuration = server.configuration
            configuration.retryDeadline = .seconds(30)
            let client = RedisClient(configuration: configuration)
            onTeardown { await client.close() }
            try await client.ping()
            await server.stop()
            async let reply = client.send("SET", "k", "v")
            // Let the client meet the closed server before the restart: wait until it reports it.
            try await within(20, "the client to notice the outage") {
                while client.connectionProblem == nil { try await Task.sleep(for: .milliseconds(5)) }
            }
            try await server.restart()
            #expect(try await reply == .status("OK"))
        }
    }

    @Test("past the retry deadline a command fails with `unavailable`, naming the server")
    func unavailable() async throws {
        try await withPrivateRedis { server in
            var configuration = server.configuration
            configuration.retryDeadline = .milliseconds(300)
            let client = RedisClient(configuration: configuration)
            onTeardown { await client.close() }
            await server.stop()
            do {
                _ = try await client.send("PING")
                Issue.record("expected an error")
            } catch let error as RedisError {
                #expect(error.code == .unavailable)
                #expect(error.description.contains(server.directory))
                #expect(error.description.contains("redis-server is running"))
            }
        }
    }

    @Test("a connection killed with a command on the wire: `outcomeUnknown`, or a resend if idempotent")
    func outcomeUnknown() async throws {
        try await withPrivateRedis { server in
            let client = RedisClient(configuration: server.configuration)
            let admin = RedisClient(configuration: server.configuration)
            onTeardown {
                await client.close()
                await admin.close()
            }
            try await client.ping()
            let ownID = try await client.send("CLIENT", "ID").int!

            async let lost = client.send(RedisCommand("BLPOP", "list", 25), idempotent: false)
            try await waitUntilBlocked(admin, clientID: ownID)
            _ = try await admin.send("CLIENT", "KILL", "ID", ownID)
            do {
                _ = try await lost
                Issue.record("expected outcomeUnknown")
            } catch let error as RedisError {
                #expect(error.code == .outcomeUnknown)
            }

            let newID = try await client.send("CLIENT", "ID").int!
            async let resent = client.send(RedisCommand("BLPOP", "list", 25), idempotent: true)
            try await waitUntilBlocked(admin, clientID: newID)
            _ = try await admin.send("CLIENT", "KILL", "ID", newID)
            // The idempotent pop is sent again on a new connection; feed it once it blocks again.
            try await within(20, "the resent pop to block") {
                while try await admin.send("CLIENT", "LIST").string?.contains("cmd=blpop") != true {
                    try await Task.sleep(for: .milliseconds(5))
                }
            }
            _ = try await admin.send("RPUSH", "list", "x")
            #expect(try await resent == .array([.bulk(Array("list".utf8)), .bulk(Array("x".utf8))]))
        }
    }

    @Test("BUSY (a long script elsewhere) is retried until the server is free")
    func busyRetried() async throws {
        try await withPrivateRedis(.init(extraArguments: ["--busy-reply-threshold", "50"])) { server in
            let slow = RedisClient(configuration: server.configuration)
            let other = RedisClient(configuration: server.configuration)
            onTeardown {
                await slow.close()
                await other.close()
            }
            try await other.ping()
            let spin = RedisScript(
                name: "spin-0",
                source: """
                    local t0 = redis.call('TIME')
                    local start = t0[1] * 1000000 + t0[2]
                    for i = 1, 100000000 do
                      local t = redis.call('TIME')
                      if t[1] * 1000000 + t[2] - start > 1200000 then return i end
                    end
                    return -1
                    """)
            async let spun = slow.run(spin, keys: [], arguments: [])
            // Wait until the script runs: a client that does not wait through BUSY is told so.
            var impatient = server.configuration
            impatient.retryDeadline = .milliseconds(1)
            let probe = RedisClient(configuration: impatient)
            onTeardown { await probe.close() }
            try await eventually(10, "the spinning script to make the server answer BUSY") {
                do {
                    _ = try await probe.send("PING")
                    return false
                } catch {
                    return "\(error)".contains("BUSY")
                }
            }
            #expect(try await other.send("SET", "k", "v") == .status("OK"))
            #expect(try await spun.int ?? 0 > 0)
            let busy = try await other.info("errorstats", "errorstat_BUSY")
            #expect(busy?.hasPrefix("count=") == true)
        }
    }

    @Test("AUTH with an ACL user; the grant is enforced")
    func aclUser() async throws {
        try await withPrivateRedis { server in
            let admin = RedisClient(configuration: server.configuration)
            onTeardown { await admin.close() }
            let created = try await admin.send("ACL", "SETUSER", "worker", "on", ">w0rker-pass", "~jobq:*", "+@all")
            #expect(created == .status("OK"))
            var configuration = server.configuration
            configuration.username = "worker"
            configuration.password = "w0rker-pass"
            let worker = RedisClient(configuration: configuration)
            onTeardown { await worker.close() }
            let allowed = try await worker.send("SET", "jobq:{q}:x", "1")
            #expect(allowed == .status("OK"))
            #expect(try await worker.send("ACL", "WHOAMI") == .bulk(Array("worker".utf8)))
            #expect(try await worker.send("SET", "other", "1").errorCode == "NOPERM")
        }
    }

    @Test("a wrong password is a clear `authFailed` that never shows the password")
    func wrongPassword() async throws {
        try await withPrivateRedis(.init(password: "right-pass")) { server in
            var configuration = server.configuration
            configuration.password = "wrong-pass-123"
            let client = RedisClient(configuration: configuration)
            onTeardown { await client.close() }
            do {
                try await client.ping()
                Issue.record("expected authFailed")
            } catch let error as RedisError {
                #expect(error.code == .authFailed)
                #expect(error.description.contains("user default"))
                #expect(error.description.contains("JOBQ_REDIS_PASSWORD"))
                #expect(!error.description.contains("wrong-pass-123"))
            }
            configuration.password = nil
            let anonymous = RedisClient(configuration: configuration)
            onTeardown { await anonymous.close() }
            await #expect { try await anonymous.ping() } throws: { ($0 as? RedisError)?.code == .authFailed }

            configuration.password = "right-pass"
            let good = RedisClient(configuration: configuration)
            onTeardown { await good.close() }
            try await good.ping()
        }
    }

    @Test("a write to a socket the server closed does not kill the process (SIGPIPE)")
    func noSigpipe() async throws {
        try await withPrivateRedis { server in
            let client = RedisClient(configuration: server.configuration)
            let admin = RedisClient(configuration: server.configuration)
            onTeardown {
                await client.close()
                await admin.close()
            }
            for _ in 0..<20 {
                let id = try await client.send("CLIENT", "ID").int!
                _ = try await admin.send("CLIENT", "KILL", "ID", id)
                // A large write into the killed socket: EPIPE, not a signal.
                let big = [UInt8](repeating: 7, count: 256 * 1024)
                _ = try? await client.send(RedisCommand("SET", "k", big))
            }
            try await client.ping()
        }
    }

    @Test("a database other than 0 is selected after every connect")
    func selectsDatabase() async throws {
        try await withPrivateRedis { server in
            var three = server.configuration
            three.database = 3
            let db3 = RedisClient(configuration: three)
            let db0 = RedisClient(configuration: server.configuration)
            onTeardown {
                await db3.close()
                await db0.close()
            }
            _ = try await db3.send("SET", "k", "in-3")
            #expect(try await db0.send("GET", "k") == .null)
            let admin = RedisClient(configuration: server.configuration)
            onTeardown { await admin.close() }
            _ = try await admin.send("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
            #expect(try await db3.send("GET", "k") == .bulk(Array("in-3".utf8)))
        }
    }

    @Test("READONLY from a replica: reconnect and retry until the deadline, then `unavailable`")
    func readonlyReplica() async throws {
        try await withPrivateRedis(.init(transport: .tcp)) { primary in
            guard case .tcp(let host, let port) = primary.endpoint else { return }
            try await withPrivateRedis(.init(transport: .tcp, extraArguments: ["--replicaof", host, String(port)])) { replica in
                var configuration = replica.configuration
                configuration.retryDeadline = .milliseconds(500)
                let client = RedisClient(configuration: configuration)
                onTeardown { await client.close() }
                #expect(try await client.send("ROLE").array?.first == .bulk(Array("slave".utf8)))
                do {
                    _ = try await client.send("SET", "k", "v")
                    Issue.record("expected unavailable")
                } catch let error as RedisError {
                    #expect(error.code == .unavailable)
                    #expect(error.detail.contains("READONLY"))
                }
                // Reads still work on the replica.
                #expect(try await client.send("GET", "k") == .null)
            }
        }
    }

    @Test("a server that accepts and drops (maxclients reached) is retried with backoff, then `unavailable`")
    func maxClients() async throws {
        try await withPrivateRedis(.init(extraArguments: ["--maxclients", "1", "--loglevel", "verbose"])) { server in
            let first = RedisClient(configuration: server.configuration)
            onTeardown { await first.close() }
            do { try await first.ping() } catch {
                Issue.record("first ping: \(error); log: \(server.logTail(lines: 30))")
                return
            }
            var configuration = server.configuration
            configuration.retryDeadline = .milliseconds(400)
            let second = RedisClient(configuration: configuration)
            onTeardown { await second.close() }
            do {
                try await second.ping()
                Issue.record("expected unavailable")
            } catch let error as RedisError {
                #expect(error.code == .unavailable)
                #expect(error.detail.contains("max number of clients"))
            }
            // The server saw a bounded number of attempts, not a tight loop.
            var rejected = 0
            do { rejected = try await first.info("stats", "rejected_connections").flatMap { Int($0) } ?? 0 } catch {
                Issue.record("info: \(error)")
                return
            }
            #expect(rejected >= 1 && rejected < 100)
        }
    }

    private func waitUntilBlocked(_ admin: RedisClient, clientID: Int) async throws {
        try await within(20, "client \(clientID) to block") {
            while try await admin.send("CLIENT", "LIST", "ID", clientID).string?.contains("cmd=blpop") != true {
                try await Task.sleep(for: .milliseconds(5))
            }
        }
    }
}

@Suite("Pub/sub subscriber", .awaitedTeardown)
struct RedisSubscriberTests {
    @Test("delivers messages and resubscribes by itself after a server restart")
    func resubscribes() async throws {
        try await withPrivateRedis { server in
            var configuration = server.configuration
            configuration.retryDeadline = .seconds(20)
            let publisher = RedisClient(configuration: configuration)
            let subscriber = RedisSubscriber(configuration: configuration)
            onTeardown {
                await subscriber.close()
                await publisher.close()
            }
            let reader = EventReader(subscriber)
            try await subscriber.subscribe(["jobq:{a}:cancel", "jobq:{b}:cancel"])
            #expect(try await publisher.send("PUBLISH", "jobq:{a}:cancel", [UInt8]([0, 1, 2])) == .integer(1))
            #expect(try await reader.next() == .message(channel: "jobq:{a}:cancel", payload: [0, 1, 2]))

            await server.kill()
            try await server.restart()
            #expect(try await reader.next() == .resubscribed(["jobq:{a}:cancel", "jobq:{b}:cancel"]))
            #expect(try await publisher.send("PUBLISH", "jobq:{b}:cancel", "job-7") == .integer(1))
            #expect(try await reader.next() == .message(channel: "jobq:{b}:cancel", payload: Array("job-7".utf8)))

            subscriber.unsubscribe(["jobq:{a}:cancel"])
            try await within(20, "the unsubscribe to take effect") {
                while try await publisher.send("PUBSUB", "NUMSUB", "jobq:{a}:cancel").array?.last != .integer(0) {
                    try await Task.sleep(for: .milliseconds(5))
                }
            }
            #expect(try await publisher.send("PUBLISH", "jobq:{b}:cancel", "job-8") == .integer(1))
            #expect(try await reader.next() == .message(channel: "jobq:{b}:cancel", payload: Array("job-8".utf8)))
        }
    }

    @Test("closing finishes the event stream")
    func closeFinishes() async throws {
        let server = try await SharedRedis.instance.server()
        let subscriber = RedisSubscriber(configuration: server.configuration)
        try await subscriber.subscribe([uniqueKey()])
        await subscriber.close()
        var iterator = subscriber.events.makeAsyncIterator()
        #expect(await iterator.next() == nil)
    }
}
