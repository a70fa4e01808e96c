import Foundation
import LocalRedis
import Testing
@testable import JobQ

/// Issue 7: config/users.acl loads into Redis, and its two users can do jobq's work — and little
/// else. (The reliability issue takes these users further: chaos, wrong passwords, every command.)
@Suite("config/users.acl")
struct ACLFileTests {
    @Test("the worker and admin users run a job end to end; FLUSHALL, KEYS, CONFIG and foreign keys are refused")
    func leastPrivilege() async throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let aclCopy = FileManager.default.temporaryDirectory.appendingPathComponent("jobq-users-\(UUID().uuidString).acl").path
        try FileManager.default.copyItem(atPath: root.appendingPathComponent("config/users.acl").path, toPath: aclCopy)
        defer { try? FileManager.default.removeItem(atPath: aclCopy) }
        let server = try await RedisServerProcess.start(.init(extraArguments: ["--aclfile", aclCopy]))
        defer { Task { await server.destroy() } }

        func client(_ user: String, _ password: String) -> RedisClient {
            var c = server.configuration
            c.username = user
            c.password = password
            c.retryDeadline = .seconds(5)
            return RedisClient(configuration: c)
        }
        let admin = client("jobq-admin", "CHANGE-ME-admin")
        let workerClient = client("jobq-worker", "CHANGE-ME-worker")
        defer { Task { await admin.close(); await workerClient.close() } }

        let queue = try JobQueue(name: "acl-\(UUID().uuidString.prefix(6))", client: admin)
        let added = try await queue.add(name: "echo", payload: .json(#"{"hi":1}"#))
        let delayed = try await queue.add(name: "echo", payload: .json("{}"), options: .init(delay: .milliseconds(200)))
        var handlers = JobHandlers()
        handlers.register(name: "echo") { job, context in
            context.progress(percent: 50)
            try await context.checkpoint(Array("half".utf8))
            return job.payload.bytes
        }
        let workerQueue = try JobQueue(name: queue.name, client: workerClient)
        try await withWorker(workerQueue, handlers: handlers) { _ in
            try await eventually(20, "both jobs completed under the worker user") { try await queue.inspector.counts().completed == 2 }
            #expect(try await WorkerInfo.list(client: admin, queue: queue.name).count == 1, "the admin user reads heartbeats")
        }
        #expect(try await queue.inspector.job(added.id)?.resultText == #"{"hi":1}"#)
        #expect(try await queue.inspector.job(delayed.id)?.state == .completed)
        let third = try await queue.add(name: "echo", payload: .json("{}"))
        #expect(try await queue.cancel(third.id) == .cancelled)
        #expect(try await queue.inspector.retry([third.id]) == [.retried])
        #expect(try await queue.inspector.clean(state: .completed) == 2)
        let paused = try await queue.inspector.pause()
        let resumed = try await queue.inspector.resume()
        #expect(paused && resumed)
        #expect(try await QueueInspector.queues(client: admin).contains { $0.name == queue.name })
        _ = try await queue.inspector.obliterate(force: true)

        for c in [admin, workerClient] {
            for command in [RedisCommand("FLUSHALL"), RedisCommand("KEYS", "*"), RedisCommand("CONFIG", "GET", "dir"),
                            RedisCommand("GET", "not-jobq"), RedisCommand("SCRIPT", "FLUSH"), RedisCommand("ACL", "LIST")] {
                let reply = try await c.send(command)
                guard case .error(let message) = reply else {
                    Issue.record("\(command) was allowed: \(reply)")
                    continue
                }
                #expect(message.hasPrefix("NOPERM"), "\(message)")
            }
        }
    }
}
