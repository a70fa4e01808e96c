import Foundation
import LocalRedis
import Testing

@testable import JobQ
@testable import JobQRedis

@Suite("Client lifetime: nothing runs before the first command; close joins what ran", .awaitedTeardown)
struct ClientLifetimeTests {
    @Test("a client starts no thread at init, one per connection on first use, and close() returns only after each has ended")
    func threadsHaveOwners() async throws {
        var configuration = try await SharedRedis.instance.server().configuration
        configuration.connectionCount = 3
        let client = RedisClient(configuration: configuration)
        #expect(client.threadStates.count == 3)
        #expect(client.threadStates.allSatisfy { !$0.started }, "init started a thread")
        // Concurrent callers spread over the pool: each connection it used has a thread now.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<64 { group.addTask { _ = try await client.send("PING") } }
            try await group.waitForAll()
        }
        #expect(client.threadStates.contains { $0.started && !$0.exited })
        await client.close()
        #expect(client.threadStates.allSatisfy { !$0.started || $0.exited }, "close() returned before a thread ended: \(client.threadStates)")
        await #expect(throws: RedisError.self) { _ = try await client.send("PING") }
    }

    @Test("a client never used closes at once; withClient and withSubscription close what they opened")
    func scoped() async throws {
        let unused = RedisClient(configuration: RedisConfiguration(endpoint: .tcp(host: "127.0.0.1", port: 1)))
        await unused.close()
        #expect(unused.threadStates.allSatisfy { !$0.started })
        let configuration = try await SharedRedis.instance.server().configuration
        let channel = uniqueKey()
        let (kept, heard) = try await RedisClient.withClient(configuration: configuration) { client in
            let heard = try await client.withSubscription(to: [channel]) { events in
                _ = try await client.send("PUBLISH", channel, "hello")
                for await event in events {
                    if case .message(_, let payload) = event { return String(decoding: payload, as: UTF8.self) }
                }
                return "ended"
            }
            return (client, heard)
        }
        #expect(heard == "hello")
        #expect(kept.threadStates.allSatisfy { !$0.started || $0.exited }, "withClient left a thread running")
    }
}
