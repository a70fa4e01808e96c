import Foundation
import LocalRedis
import Testing

@testable import JobQ
@testable import JobQRedis

/// The opt-in durable add (`WAIT`), against a real primary and replica.
@Suite("Durable adds (WAIT)", .awaitedTeardown)
struct DurableAddTests {
    @Test(
        "with replicasToConfirmAdds = 1 an add returns once the replica has it; with the replica gone it throws notReplicated naming the job, which is still stored"
    )
    func waitForReplica() async throws {
        let primary = try await RedisServerProcess.start(.init(transport: .tcp))
        onTeardown { await primary.destroy() }
        guard case .tcp(let host, let port) = primary.endpoint else {
            Issue.record("tcp expected")
            return
        }
        let replica = try await RedisServerProcess.start(.init(transport: .tcp, extraArguments: ["--replicaof", host, String(port)]))
        onTeardown { await replica.destroy() }
        let client = RedisClient(configuration: primary.configuration)
        onTeardown { await client.close() }
        try await eventually(30, "the replica to be in sync") {
            try await client.send("INFO", "replication").string?.contains("state=online") == true
        }
        var settings = QueueSettings()
        settings.replicasToConfirmAdds = 1
        settings.replicaConfirmTimeout = .seconds(10)  // generous: a loaded CI machine acks late
        let queue = try JobQueue(name: "durable-\(UUID().uuidString.prefix(6))", client: client, settings: settings)
        let added = try await queue.add(name: "x", payload: .json("{}"))
        #expect(added.created)
        let replicaClient = RedisClient(configuration: replica.configuration)
        #expect(try await replicaClient.send("EXISTS", queue.core.keys.job(added.id)).int == 1, "the replica has the job")
        await replicaClient.close()
        let bulk = try await queue.addBulk((0..<50).map { _ in JobQueue.NewJob(name: "x", payload: .json("{}")) })
        #expect(bulk.allSatisfy { (try? $0.get().created) == true })

        await replica.stop()
        try await eventually(30, "the primary to see the replica gone") {
            try await client.send("INFO", "replication").string?.contains("connected_slaves:0") == true
        }
        // With no replica, a short wait is enough to see the refusal.
        var hasty = settings
        hasty.replicaConfirmTimeout = .milliseconds(300)
        let refusing = try JobQueue(name: queue.name, client: client, settings: hasty)
        var refusedID: String?
        await #expect { try await refusing.add(name: "x", payload: .json("{}")) } throws: { error in
            guard let error = error as? JobQError, error.code == .notReplicated else { return false }
            refusedID = error.jobID
            return "\(error)".contains("0 of 1 replicas") && error.hint.contains("same id")
        }
        let id = try #require(refusedID)
        #expect(try await queue.inspector.job(id)?.state == .waiting, "the job is on the primary and will run")
        let unconfirmed = try await refusing.addBulk((0..<3).map { _ in JobQueue.NewJob(name: "x", payload: .json("{}")) })
        #expect(unconfirmed.allSatisfy { if case .failure(let e) = $0 { return e.code == .notReplicated && e.jobID != nil } else { return false } })
    }
}
