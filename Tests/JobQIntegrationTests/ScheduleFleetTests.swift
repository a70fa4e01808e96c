import Foundation
import LocalRedis
import Testing

@testable import JobQ
@testable import JobQRedis

/// A fleet of `jobq-worker` processes all advancing one schedule — nested in the serialized
/// `Executables` suite (it spawns processes).
extension ExecutableTests.WorkerProcesses {
    @Test(
        "four jobq-worker processes advance one 1-second schedule for 60+ ticks through two kill -9s and a Redis restart: one job per tick, none missed, every tick run"
    )
    func scheduleFleet() async throws {
        let server = try await RedisServerProcess.start(.init(transport: .tcp, appendFsync: "always"))
        onTeardown { await server.destroy() }
        let client = RedisClient(configuration: server.configuration)
        onTeardown { await client.close() }
        let queue = try JobQueue(name: "fleet-\(UUID().uuidString.prefix(8))", client: client)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("jobq-fleet-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        onTeardown { try? FileManager.default.removeItem(at: dir) }
        // The handlers log each run outside Redis: the job id and the attempt.
        let runs = dir.appendingPathComponent("runs.log").path
        let program = dir.appendingPathComponent("beat.sh").path
        try "#!/bin/sh\necho \"$JOBQ_JOB_ID $JOBQ_ATTEMPT\" >> \(runs)\n".write(toFile: program, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: program)
        let config = dir.appendingPathComponent("worker.yaml").path
        try """
        worker:
          queues: [\(queue.name)]
          concurrency: 4
          lease: 2s
        handlers:
          - "beat=exec:\(program)"
        schedules:
          - id: beat
            every: 1s
            job: beat
        """.write(toFile: config, atomically: true, encoding: .utf8)
        @Sendable func lines() -> [String] {
            ((try? String(contentsOfFile: runs, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
        }
        /// Ticks run (a job run twice after a kill counts once).
        @Sendable func ran() -> Int { Set(lines().map { $0.split(separator: " ").first ?? "" }).count }
        func start(_ n: Int) async throws -> WorkerProcess {
            let w = try WorkerProcess(["--config", config, "--redis-url", server.url, "--worker-id", "fleet-\(n)"])
            try await w.waitForLog("worker started")
            return w
        }
        var workers: [WorkerProcess] = []
        for n in 0..<4 { workers.append(try await start(n)) }
        // Every worker upserted the same schedule at start: one schedule.
        #expect(try await queue.schedules().map(\.id) == ["beat"])

        try await eventually(60, "10 ticks run") { ran() >= 10 }
        workers[0].process.signal(SIGKILL)
        _ = try await workers[0].exitCode()
        workers[0] = try await start(4)
        try await eventually(60, "25 ticks run") { ran() >= 25 }
        await server.stop()
        try await server.restart()
        try await eventually(60, "40 ticks run") { ran() >= 40 }
        workers[1].process.signal(SIGKILL)
        _ = try await workers[1].exitCode()
        workers[1] = try await start(5)
        try await eventually(90, "65 ticks run") { ran() >= 65 }
        for w in workers { w.process.signal(SIGTERM) }
        for w in workers { #expect(try await w.exitCode() == 0, "\(w.log.suffix(1500))") }

        // Redis's side: each tick made once (ids from the tick), consecutive, none skipped.
        let rows = try await client.send(RedisCommand("XRANGE", queue.core.keys.events, "-", "+")).array ?? []
        let events = rows.compactMap { row -> QueueEvent? in
            guard let entry = row.array, entry.count == 2, let flat = entry[1].array else { return nil }
            return QueueEvent(streamID: entry[0].string ?? "", flat: flat)
        }
        let made = events.filter { $0.kind == .scheduled }.map(\.jobID)
        #expect(Set(made).count == made.count, "a tick made twice: \(made)")
        #expect(events.filter { $0.kind == .skipped }.isEmpty, "no tick missed: outages within the misfire grace are made late")
        let ticks = made.compactMap { ISO8601DateFormatter().date(from: String($0.split(separator: "@").last ?? "")) }.sorted()
        #expect(ticks.count == made.count && ticks.count >= 65)
        for (a, b) in zip(ticks, ticks.dropFirst()) {
            #expect(b.timeIntervalSince(a) == 1, "ticks \(a) → \(b): one missing")
        }
        // The handlers' side: every tick made before the stop ran; a second run of one job only
        // after its worker was killed (its record shows the stall).
        let ran = lines().map { String($0.split(separator: " ").first ?? "") }
        var byJob: [String: Int] = [:]
        for id in ran { byJob[id, default: 0] += 1 }
        #expect(Set(ran).isSubset(of: Set(made)), "every run is of a tick's job")
        for (id, n) in byJob where n > 1 {
            let job = try await queue.inspector.job(id)
            #expect((job?.stallCount ?? 1) > 0, "\(id) ran \(n) times without a stall")
        }
        let pending = try await queue.inspector.counts()
        #expect(Set(ran).count >= made.count - pending.waiting - pending.delayed - pending.active, "made ticks that never ran")
    }
}
