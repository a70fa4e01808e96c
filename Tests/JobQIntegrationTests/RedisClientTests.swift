import Foundation
import JobQ
import LocalRedis
import Testing

@Suite("Redis client against a shared server", .awaitedTeardown)
struct RedisClientTests {
    @Test("SET and GET round-trip, binary-safe with NUL bytes and 1 MiB values")
    func binarySafe() async throws {
        let client = try await SharedRedis.client()
        onTeardown { await client.close() }
        let key = uniqueKey()
        let payload: [UInt8] = [0, 0, 1, 0, 13, 10, 255, 0]
        #expect(try await client.send("SET", key, payload) == .status("OK"))
        #expect(try await client.send("GET", key) == .bulk(payload))
        #expect(try await client.send("STRLEN", key) == .integer(8))

        var big = [UInt8](repeating: 0, count: 1 << 20)
        for i in big.indices where i % 7 == 0 { big[i] = UInt8(truncatingIfNeeded: i) }
        _ = try await client.send("SET", key, big)
        #expect(try await client.send("GET", key) == .bulk(big))
        _ = try await client.send("DEL", key)
        #expect(try await client.send("GET", key) == .null)
    }

    @Test("an error reply is a value and leaves the connection usable")
    func errorReplies() async throws {
        let client = try await SharedRedis.client()
        onTeardown { await client.close() }
        let key = uniqueKey()
        _ = try await client.send("SET", key, "x")
        let reply = try await client.send("LPUSH", key, "y")
        #expect(reply.errorCode == "WRONGTYPE")
        #expect(try await client.send("GET", key) == .bulk(Array("x".utf8)))
        #expect(try await client.send("NOSUCHCOMMAND").errorCode == "ERR")
    }

    @Test("a pipeline of 10,000 commands answers each in order")
    func pipeline10k() async throws {
        let client = try await SharedRedis.client()
        onTeardown { await client.close() }
        let key = uniqueKey()
        let commands = (0..<10_000).map { RedisCommand("RPUSH", key, "v\($0)") }
        let replies = try await client.pipeline(commands)
        #expect(replies.count == 10_000)
        #expect(replies.enumerated().allSatisfy { $0.element == .integer(Int64($0.offset + 1)) })
        let gets = try await client.pipeline((0..<10_000).map { RedisCommand("LINDEX", key, $0) })
        #expect(gets.enumerated().allSatisfy { $0.element == .bulk(Array("v\($0.offset)".utf8)) })
        _ = try await client.send("DEL", key)
    }

    @Test("64 concurrent callers share one connection and each gets its own reply")
    func concurrentCallers() async throws {
        let client = try await SharedRedis.client()
        onTeardown { await client.close() }
        let prefix = uniqueKey()
        let mismatches = try await withThrowingTaskGroup(of: Int.self) { group in
            for t in 0..<64 {
                group.addTask {
                    var bad = 0
                    for i in 0..<100 {
                        let key = "\(prefix):\(t)"
                        let value = "\(t)-\(i)"
                        _ = try await client.send("SET", key, value)
                        if try await client.send("GET", key) != .bulk(Array(value.utf8)) { bad += 1 }
                    }
                    return bad
                }
            }
            return try await group.reduce(0, +)
        }
        #expect(mismatches == 0)
        let keys = (0..<64).map { "\(prefix):\($0)" as any RedisArgument }
        #expect(try await client.send(RedisCommand("DEL", arguments: keys)) == .integer(64))
    }

    @Test("scripts run by EVALSHA once loaded; a broken script is reported at load")
    func scripts() async throws {
        let client = try await SharedRedis.client()
        onTeardown { await client.close() }
        let script = RedisScript(name: "echo-1", source: "return {KEYS[1], ARGV[1]}", keyCount: 1)
        let key = uniqueKey()
        // Unknown SHA: sent as EVAL, and the SHA is learned in the same flight.
        #expect(try await client.run(script, keys: [key], arguments: ["a"]) == .array([.bulk(Array(key.utf8)), .bulk(Array("a".utf8))]))
        #expect(script.sha?.count == 40)
        #expect(try await client.run(script, keys: [key], arguments: ["b"]) == .array([.bulk(Array(key.utf8)), .bulk(Array("b".utf8))]))

        let broken = RedisScript(name: "broken-0", source: "return (")
        await #expect(throws: RedisError.self) { try await client.load([broken]) }

        await #expect(throws: RedisError.self) {
            _ = try await client.run(script, keys: [], arguments: [])
        }
    }

    @Test("a closed client refuses commands with `closed`")
    func closed() async throws {
        let client = try await SharedRedis.client()
        try await client.ping()
        await client.close()
        await #expect {
            _ = try await client.send("PING")
        } throws: { ($0 as? RedisError)?.code == .closed }
    }

    @Test("TCP on a loopback port works like the unix socket")
    func tcp() async throws {
        try await withPrivateRedis(.init(transport: .tcp)) { server in
            let client = RedisClient(configuration: try RedisConfiguration(url: server.url))
            onTeardown { await client.close() }
            #expect(server.url.hasPrefix("redis://127.0.0.1:"))
            _ = try await client.send("SET", "k", [UInt8]([0, 1, 2]))
            #expect(try await client.send("GET", "k") == .bulk([0, 1, 2]))
        }
    }
}

@Suite("Blocking connection", .awaitedTeardown)
struct RedisBlockingClientTests {
    @Test("a blocked pop returns the pushed value")
    func popsPushedValue() async throws {
        let server = try await SharedRedis.instance.server()
        let control = RedisClient(configuration: server.configuration)
        let blocking = RedisBlockingClient(configuration: server.configuration, control: control, maxBlockTimeout: .seconds(30))
        onTeardown {
            await blocking.close()
            await control.close()
        }
        let key = uniqueKey()
        async let popped = blocking.send(RedisCommand("BLPOP", key, 25))
        // Push only once the pop is blocked (the server says so), never after a fixed sleep.
        try await within(20, "the pop to block") {
            while try await control.send("CLIENT", "LIST", "TYPE", "normal").string?.contains("cmd=blpop") != true {
                try await Task.sleep(for: .milliseconds(5))
            }
        }
        _ = try await control.send("RPUSH", key, "job-1")
        #expect(try await popped == .array([.bulk(Array(key.utf8)), .bulk(Array("job-1".utf8))]))
    }

    @Test("wake() returns a long block at once, and a wake before the block is not lost")
    func wake() async throws {
        let server = try await SharedRedis.instance.server()
        let control = RedisClient(configuration: server.configuration)
        let blocking = RedisBlockingClient(configuration: server.configuration, control: control, maxBlockTimeout: .seconds(30))
        onTeardown {
            await blocking.close()
            await control.close()
        }
        let key = uniqueKey()
        _ = try await blocking.send(RedisCommand("PING"))
        let start = ContinuousClock.now
        let result = try await within(20, "a woken pop") {
            async let pop = blocking.send(RedisCommand("BLPOP", key, 30))
            while true {
                let id = blocking.clientID
                if id != 0, try await control.send("CLIENT", "LIST", "ID", id).string?.contains("cmd=blpop") == true { break }
                try await Task.sleep(for: .milliseconds(5))
            }
            blocking.wake()
            return try await pop
        }
        #expect(result == .null)
        #expect(ContinuousClock.now - start < .seconds(25))

        // Woken while idle: the next blocking command returns at once instead of blocking 30 s.
        blocking.wake()
        let early = try await within(20, "a pre-woken pop") { try await blocking.send(RedisCommand("BLPOP", key, 30)) }
        #expect(early == .null)
    }

    @Test("cancelling the waiting task wakes the blocked command")
    func cancellation() async throws {
        let server = try await SharedRedis.instance.server()
        let control = RedisClient(configuration: server.configuration)
        let blocking = RedisBlockingClient(configuration: server.configuration, control: control, maxBlockTimeout: .seconds(30))
        onTeardown {
            await blocking.close()
            await control.close()
        }
        let key = uniqueKey()
        _ = try await blocking.send(RedisCommand("PING"))
        let task = Task { try await blocking.send(RedisCommand("BLPOP", key, 30)) }
        try await within(20, "the pop to block") {
            while try await control.send("CLIENT", "LIST", "ID", blocking.clientID).string?.contains("cmd=blpop") != true {
                try await Task.sleep(for: .milliseconds(5))
            }
        }
        task.cancel()
        let value = try await within(20, "the cancelled pop") { try await task.value }
        #expect(value == .null)
    }
}
