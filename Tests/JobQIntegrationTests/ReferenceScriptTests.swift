import Foundation
import Testing

@_spi(Benchmarks) @testable import JobQ

/// The benchmark's ceiling is built from the real take and finish calls; if a script's
/// arguments change, this breaks here instead of silently in a benchmark run.
@Suite("Benchmark reference: take + finish in one script", .awaitedTeardown)
struct ReferenceScriptTests {
    @Test("the reference takes and completes waiting jobs one per call, like a worker's take and finish, then reports an empty queue")
    func takesAndFinishes() async throws {
        let queue = try await uniqueQueue()
        _ = try await queue.addBulk((0..<3).map { _ in JobQueue.NewJob(name: "noop", payload: .json("{}")) })
        let reference = try ReferenceScripts.takeAndFinish(queue: queue.name, client: queue.client)
        let sha = try #require(try await queue.client.send("SCRIPT", "LOAD", reference.source).string)
        for _ in 0..<3 {
            let reply = try await queue.client.send(RedisCommand("EVALSHA", arguments: [sha] + reference.arguments))
            #expect(reply.int == 1, "\(reply)")
        }
        let empty = try await queue.client.send(RedisCommand("EVALSHA", arguments: [sha] + reference.arguments))
        #expect(empty.int == 0, "nothing left to take: \(empty)")
        let counts = try await queue.inspector.counts()
        #expect(counts.completed == 3 && counts.waiting == 0 && counts.active == 0)
        let done = try await queue.inspector.jobs(state: .completed, limit: 10)
        #expect(done.count == 3 && done.allSatisfy { $0.attemptsMade == 1 && $0.executionID == "reference-token" })
    }
}
