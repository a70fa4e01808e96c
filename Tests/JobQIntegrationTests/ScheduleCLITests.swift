import Foundation
import JobQ
import LocalRedis
import Testing

/// Schedules from `jobq-admin` and `jobq-worker`'s YAML — nested in the serialized
/// `Executables` suite (it spawns processes).
extension ExecutableTests {
    @Suite("Schedules from the command line", .awaitedTeardown)
    struct ScheduleCLI {
        @Test(
            "jobq-admin schedule add|pause|resume|trigger|remove and schedules (text and JSON); a bad cron or zone exits 2 and stores nothing; a missing schedule exits 4"
        )
        func admin() async throws {
            let server = try await SharedRedis.instance.server()
            let client = RedisClient(configuration: server.configuration)
            onTeardown { await client.close() }
            let queue = try JobQueue(name: "sched-cli-\(UUID().uuidString.prefix(8))", client: client)
            let url = ["--redis-url", server.url]
            let added = try await runAdmin(
                ["schedule", "add", queue.name, "nightly", "report", "--cron", "0 2 * * *", "--tz", "Europe/Berlin", "--data", #"{"k":1}"#, "--attempts", "5"]
                    + url)
            #expect(added.code == 0 && added.out.contains("nightly  created"), "\(added)")
            #expect(added.out.contains("(01:00:00Z)"), "next runs in local time and UTC: \(added.out)")
            let again = try await runAdmin(
                [
                    "schedule", "add", queue.name, "nightly", "report", "--cron", "0 2 * * *", "--tz", "Europe/Berlin", "--data", #"{"k":1}"#, "--attempts",
                    "5",
                    "--json",
                ] + url)
            #expect(jsonObject(again.out)?["change"] as? String == "unchanged", "\(again.out)")
            let every = try await runAdmin(["schedule", "add", queue.name, "beat", "ping", "--every", "10s", "--overlap", "skipIfRunning"] + url)
            #expect(every.code == 0, "\(every)")
            for (args, expected) in [
                (["--cron", "0 25 * * *"], "field 2 (hour)"), (["--cron", "0 2 * * *", "--tz", "Mars/Base"], "time zone"),
                (["--every", "5m", "--misfire", "sometimes"], "--misfire"), ([String](), "--cron EXPR or --every"),
            ] {
                let bad = try await runAdmin(["schedule", "add", queue.name, "bad", "x"] + args + url)
                #expect(bad.code == 2 && bad.err.contains(expected), "\(args): \(bad)")
            }
            let listed = try await runAdmin(["schedules", queue.name, "--json"] + url)
            let rows = try #require(jsonArray(listed.out), "\(listed.out)")
            #expect(rows.compactMap { $0["id"] as? String } == ["beat", "nightly"], "nothing stored for the refused ones")
            let nightly = try #require(rows.first { $0["id"] as? String == "nightly" })
            #expect((nightly["nextRuns"] as? [Any])?.count == 3 && (nightly["spec"] as? [String: Any])?["timeZone"] as? String == "Europe/Berlin")
            #expect((nightly["job"] as? [String: Any])?["attempts"] as? Int == 5)
            let text = try await runAdmin(["schedules"] + url)
            #expect(text.code == 0 && text.out.contains("\(queue.name) / nightly") && text.out.contains("policies: misfire fireOnce"), "\(text.out)")

            #expect(try await runAdmin(["schedule", "pause", queue.name, "beat"] + url).out.contains("beat  paused"))
            #expect(try await runAdmin(["schedule", "pause", queue.name, "beat"] + url).out.contains("already paused"))
            #expect(try await runAdmin(["schedule", "resume", queue.name, "beat"] + url).out.contains("beat  resumed"))
            let trigger = try await runAdmin(["schedule", "trigger", queue.name, "nightly", "--json"] + url)
            let job = try #require(jsonObject(trigger.out)?["id"] as? String, "\(trigger)")
            let inspect = try await runAdmin(["inspect", queue.name, job, "--json"] + url)
            #expect(jsonObject(inspect.out)?["scheduleId"] as? String == "nightly", "\(inspect.out)")
            let tick = try await runAdmin(["schedule", "tick", queue.name] + url)
            #expect(tick.code == 0 && tick.out.hasPrefix("advanced"), "\(tick)")
            #expect(try await runAdmin(["schedule", "remove", queue.name, "beat"] + url).code == 0)
            let gone = try await runAdmin(["schedule", "remove", queue.name, "beat", "--json"] + url)
            #expect(gone.code == 4, "\(gone)")
            #expect(try await queue.schedules().map(\.id) == ["nightly"])
        }

        @Test("jobq-worker upserts its file's schedules; one the file does not list is kept with a warning, or deleted with --prune-schedules")
        func prune() async throws {
            let server = try await SharedRedis.instance.server()
            let client = RedisClient(configuration: server.configuration)
            onTeardown { await client.close() }
            let queue = try JobQueue(name: "sched-prune-\(UUID().uuidString.prefix(8))", client: client)
            try await queue.upsertSchedule(id: "old", .every(.minutes(1)), job: .init(name: "e", payload: .json("{}")))
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("sched-prune-\(UUID().uuidString).yaml").path
            try """
            worker:
              queues: [\(queue.name)]
            handlers: ["e=echo"]
            schedules:
              - {id: new, every: 1m, job: e}
            """.write(toFile: file, atomically: true, encoding: .utf8)
            onTeardown { try? FileManager.default.removeItem(atPath: file) }
            let keep = try WorkerProcess(["--config", file, "--redis-url", server.url])
            try await keep.waitForLog("worker started")
            #expect(keep.log.contains("schedule created") && keep.log.contains("not in the config file: kept"), "\(keep.log)")
            keep.process.signal(SIGTERM)
            #expect(try await keep.exitCode() == 0)
            #expect(try await queue.schedules().map(\.id) == ["new", "old"])
            let prune = try WorkerProcess(["--config", file, "--redis-url", server.url, "--prune-schedules"])
            try await prune.waitForLog("worker started")
            #expect(prune.log.contains("schedule unchanged") && prune.log.contains("schedule removed"), "\(prune.log)")
            prune.process.signal(SIGTERM)
            #expect(try await prune.exitCode() == 0)
            #expect(try await queue.schedules().map(\.id) == ["new"])
        }
    }
}
