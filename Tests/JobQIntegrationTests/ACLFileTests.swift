import Foundation
import LocalRedis
import Synchronization
import Testing

@testable import JobQ
@testable import JobQRedis

/// config/users.acl loads into Redis, and each of its three roles (producer, worker, admin) can
/// do its part of jobq's work — and is refused the others' where Redis can tell them apart: by
/// the commands each may send, inside scripts too (Redis checks a script's calls against the
/// caller), and the keys and channels it may touch.
@Suite("config/users.acl", .awaitedTeardown)
struct ACLFileTests {
    /// A private server loading a copy of config/users.acl (the copy's path, to remove).
    /// A private server loading a copy of the file; both are gone when the test ends.
    static func serverWithACLFile() async throws -> RedisServerProcess {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let aclCopy = FileManager.default.temporaryDirectory.appendingPathComponent("jobq-users-\(UUID().uuidString).acl").path
        try FileManager.default.copyItem(atPath: root.appendingPathComponent("config/users.acl").path, toPath: aclCopy)
        onTeardown { try? FileManager.default.removeItem(atPath: aclCopy) }
        let server = try await RedisServerProcess.start(.init(extraArguments: ["--aclfile", aclCopy]))
        onTeardown { await server.destroy() }
        return server
    }

    /// A client for the file's `jobq-<role>` user, with its CHANGE-ME password; closed when the
    /// test ends.
    static func client(_ server: RedisServerProcess, _ role: String) -> RedisClient {
        var c = server.configuration
        c.username = "jobq-\(role)"
        c.password = "CHANGE-ME-\(role)"
        c.retryDeadline = .seconds(5)
        let client = RedisClient(configuration: c)
        onTeardown { await client.close() }
        return client
    }

    @Test("the worker and admin users run a job end to end; FLUSHALL, KEYS, CONFIG and foreign keys are refused")
    func leastPrivilege() async throws {
        let server = try await Self.serverWithACLFile()
        let admin = Self.client(server, "admin")
        let workerClient = Self.client(server, "worker")

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
            for command in [
                RedisCommand("FLUSHALL"), RedisCommand("KEYS", "*"), RedisCommand("CONFIG", "GET", "dir"),
                RedisCommand("GET", "not-jobq"), RedisCommand("SCRIPT", "FLUSH"), RedisCommand("ACL", "LIST"),
            ] {
                let reply = try await c.send(command)
                guard case .error(let message) = reply else {
                    Issue.record("\(command) was allowed: \(reply)")
                    continue
                }
                #expect(message.hasPrefix("NOPERM"), "\(message)")
            }
        }
    }

    @Test(
        "each role is refused what the others do: a producer cannot take, pause, purge or list queues; a worker cannot purge, obliterate or list queues; an admin cannot take"
    )
    func roles() async throws {
        let server = try await Self.serverWithACLFile()
        let producer = Self.client(server, "producer")
        let worker = Self.client(server, "worker")
        let admin = Self.client(server, "admin")
        let name = "roles-\(UUID().uuidString.prefix(6))"
        let asProducer = try JobQueue(name: name, client: producer)
        let asWorker = try JobQueue(name: name, client: worker)
        let asAdmin = try JobQueue(name: name, client: admin)
        func refused(_ what: String, naming command: String? = nil, _ body: () async throws -> Void) async {
            do {
                try await body()
                Issue.record("\(what) was allowed")
            } catch let error as JobQError {
                #expect(error.code == .permissionDenied, "\(what): \(error)")
                if let command { #expect(error.description.contains("may not run \(command)"), "\(what) names \(command): \(error)") }
            } catch {
                Issue.record("\(what): \(error)")
            }
        }
        func refusedCommand(_ c: RedisClient, _ command: RedisCommand) async throws {
            let reply = try await c.send(command)
            #expect(reply.errorCode == "NOPERM", "\(command) answered \(reply)")
        }

        // The producer adds, cancels, reads its jobs and waits for results.
        let first = try await asProducer.add(name: "echo", payload: .json("{}"))
        let second = try await asProducer.add(name: "echo", payload: .json("{}"))
        #expect(try await asProducer.inspector.job(first.id)?.state == .waiting)
        #expect(try await asProducer.cancel(second.id) == .cancelled)
        await refused("producer take", naming: "RPOP") { _ = try await asProducer.takeJob() }
        await refused("producer pause") { _ = try await asProducer.inspector.pause() }
        await refused("producer purge") { _ = try await asProducer.inspector.purge() }
        await refused("producer overview") { _ = try await QueueInspector.overview(client: producer) }
        try await refusedCommand(producer, RedisCommand("BZPOPMIN", asProducer.core.keys.marker, "0.01"))
        try await refusedCommand(producer, RedisCommand("SUBSCRIBE", asProducer.core.keys.cancelChannel))

        // The worker runs the job (take, renew, heartbeat, finish) and is refused operator actions.
        var handlers = JobHandlers()
        handlers.register(name: "echo") { job, _ in job.payload.bytes }
        try await withWorker(asWorker, handlers: handlers) { _ in
            try await eventually(20, "the job completed under the worker user") { try await asAdmin.inspector.job(first.id)?.state == .completed }
        }
        // Schedules: an app (the producer user) upserts one, the worker user advances it (a
        // tick cancels the one before, which no worker started), the admin lists and removes it.
        try await asProducer.upsertSchedule(
            id: "acl", .every(.seconds(1)), job: .init(name: "other", payload: .json("{}")), options: .init(overlap: .cancelPrevious))
        #expect(try await asProducer.schedules().map(\.id) == ["acl"])
        let added = Mutex(0)
        try await eventually(20, "the worker user advanced the schedule twice") {
            let pass = try await asWorker.advanceSchedules()
            return added.withLock { n in
                n += pass.added
                return n >= 2
            }
        }
        #expect(try await asAdmin.schedules().first?.fired ?? 0 >= 2)
        #expect(try await asAdmin.removeSchedule(id: "acl"))
        _ = try await asAdmin.inspector.purge()

        // The worker user reaps a dead worker's job, taking the reaper lock as its keeper does.
        let orphan = try await asProducer.add(name: "other", payload: .json("{}"))
        _ = try #require(try await asWorker.takeJob(JobQueue.testLease(.milliseconds(1))))
        try await eventually(20, "the worker user's reaper to requeue the job") {
            try await asWorker.core.recoverStalled(holder: "acl-worker", lockMs: 1000).requeued == 1
        }
        #expect(try await asAdmin.inspector.job(orphan.id)?.state == .waiting)
        _ = try await asAdmin.inspector.remove([orphan.id])
        let third = try await asProducer.add(name: "other", payload: .json("{}"))
        await refused("worker purge", naming: "LRANGE") { _ = try await asWorker.inspector.purge() }
        await refused("worker obliterate") { _ = try await asWorker.inspector.obliterate(force: true) }
        // A worker may cancel a job (a schedule's cancelPrevious runs in its scheduler), so
        // cancel and remove are not refused it; the bulk and listing actions are.
        await refused("worker overview") { _ = try await QueueInspector.overview(client: worker) }
        #expect(try await asAdmin.inspector.job(third.id)?.state == .waiting, "nothing the refused calls did stuck")

        // The admin does every operator action, and cannot take jobs.
        #expect(try await QueueInspector.overview(client: admin).contains { $0.name == name })
        await refused("admin take") { _ = try await asAdmin.takeJob() }
        try await refusedCommand(admin, RedisCommand("BZPOPMIN", asAdmin.core.keys.marker, "0.01"))
        let paused = try await asAdmin.inspector.pause()
        let resumed = try await asAdmin.inspector.resume()
        #expect(paused && resumed)
        #expect(try await asAdmin.inspector.remove([third.id]) == [.removed(from: .waiting)])
        #expect(try await asAdmin.inspector.retry([second.id]) == [.retried])
        #expect(try await asAdmin.inspector.purge() == 1)
        #expect(try await asAdmin.inspector.clean(state: .completed) == 1)
        _ = try await asAdmin.inspector.obliterate(force: true)
        #expect(try await asAdmin.inspector.counts().waiting == 0)
    }
}
