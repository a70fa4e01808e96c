import CJobQSpawn
import Foundation
import LocalRedis
import Synchronization
import Testing

@testable import JobQ
@testable import JobQRedis

#if canImport(Glibc)
    import Glibc
#endif

/// Spawns processes: nested in the serialized `Executables` suite (`docs/testing.md`).
extension ExecutableTests {
    @Suite("jobq-admin commands", .awaitedTeardown)
    struct AdminCLITests {
        @Test("add, counts, queues, list, inspect: text and --json")
        func readAndAdd() async throws {
            let url = try await SharedRedis.instance.server().url
            let queue = try await uniqueQueue()
            let q = queue.name
            func admin(_ args: [String], input: String? = nil) async throws -> ProgramRun {
                try await runAdmin(args + ["--redis-url", url], input: input)
            }

            let first = try await admin(["add", q, "email", "--data", #"{"to":"ada@example.com"}"#, "--json"])
            #expect(first.code == 0, "\(first.err)")
            let added = try #require(jsonObject(first.out))
            let emailID = try #require(added["id"] as? String)
            #expect(added["created"] as? Bool == true && added["state"] as? String == "waiting")

            let dedup1 = try await admin(["add", q, "email", "--id", "order-42", "--data", "{}"])
            let dedup2 = try await admin(["add", q, "email", "--id", "order-42", "--data", "{}"])
            #expect(dedup1.code == 0 && dedup1.out.contains("order-42  created, waiting"), "\(dedup1)")
            #expect(dedup2.code == 0 && dedup2.out.contains("order-42  existing, waiting"), "\(dedup2)")

            let later = try await admin([
                "add", q, "report", "--delay", "1h", "--priority", "high", "--attempts", "5",
                "--backoff", "fixed:2s", "--timeout", "30s", "--keep-completed", "0", "--json",
            ])
            let reportID = try #require(jsonObject(later.out)?["id"] as? String)
            #expect(jsonObject(later.out)?["state"] as? String == "delayed")

            let blob = try await admin(["add", q, "blob", "--data-file", "-", "--binary", "--json"], input: "\u{01}\u{02}raw")
            let blobID = try #require(jsonObject(blob.out)?["id"] as? String, "\(blob)")

            let counts = try #require(jsonObject(try await admin(["counts", q, "--json"]).out))
            #expect(counts["waiting"] as? Int == 3 && counts["delayed"] as? Int == 1 && counts["paused"] as? Bool == false)
            let countsText = try await admin(["counts", q])
            #expect(countsText.out.contains("waiting") && countsText.out.contains("STATE"))

            let queues = try #require(jsonArray(try await admin(["queues", "--json"]).out))
            let mine = try #require(queues.first { $0["queue"] as? String == q })
            #expect(mine["waiting"] as? Int == 3 && mine["workers"] as? Int == 0)
            #expect(try await admin(["queues"]).out.contains(q))

            let all = try #require(jsonArray(try await admin(["list", q, "--json"]).out))
            #expect(all.count == 4)
            #expect(all.first?["state"] as? String == "waiting", "active first, then waiting, then delayed")
            #expect(try #require(jsonArray(try await admin(["list", q, "--state", "delayed", "--json"]).out)).map { $0["id"] as? String } == [reportID])
            #expect(try #require(jsonArray(try await admin(["list", q, "--name", "email", "--json"]).out)).count == 2)
            #expect(
                try #require(jsonArray(try await admin(["list", q, "--limit", "1", "--offset", "3", "--json"]).out)).map { $0["id"] as? String } == [reportID])
            let listText = try await admin(["list", q])
            #expect(listText.out.hasPrefix("ID ") && listText.out.contains(emailID) && listText.out.contains("due in "), "\(listText.out)")

            let inspected = try #require(jsonObject(try await admin(["inspect", q, emailID, "--json"]).out))
            #expect((inspected["payload"] as? [String: Any])?["to"] as? String == "ada@example.com")
            #expect((inspected["options"] as? [String: Any])?["attempts"] as? Int == 3)
            let report = try #require(jsonObject(try await admin(["inspect", q, reportID, "--json"]).out))
            let options = try #require(report["options"] as? [String: Any])
            #expect(options["attempts"] as? Int == 5 && options["priority"] as? Int == 10 && options["timeoutMs"] as? Int == 30_000)
            #expect(options["removeOnComplete"] as? Bool == true && report["dueAt"] is String)
            let raw = try #require(jsonObject(try await admin(["inspect", q, blobID, "--json"]).out))
            #expect(raw["payloadBase64"] as? String == Data("\u{01}\u{02}raw".utf8).base64EncodedString() && raw["payload"] == nil)
            let text = try await admin(["inspect", q, emailID])
            #expect(text.code == 0 && text.out.contains("ada@example.com") && text.out.contains("attempts"))
        }

        @Test("cancel, retry, remove, pause, resume, clean, retention, purge, obliterate, workers")
        func actions() async throws {
            let url = try await SharedRedis.instance.server().url
            let queue = try await uniqueQueue()
            let q = queue.name
            func admin(_ args: [String]) async throws -> ProgramRun {
                try await runAdmin(args + ["--redis-url", url])
            }
            let a = try await queue.add(name: "a", payload: .json("{}")).id
            let b = try await queue.add(name: "b", payload: .json("{}")).id
            let running = try #require(try await queue.takeJob()).0.id  // a is running now
            #expect(running == a)

            let cancel = try await admin(["cancel", q, b, a, "no-such-job", "--json"])
            #expect(cancel.code == 1, "partly failed: one id is unknown")
            let outcomes = try #require(jsonArray(cancel.out)).map { $0["outcome"] as? String }
            #expect(outcomes == ["cancelled", "cancelRequested", "notFound"])
            #expect(try await queue.inspector.job(b)?.cancelRequestedBy == "jobq-admin tester@\(ProcessInfo.processInfo.hostName)")
            #expect(try await admin(["cancel", q, "no-such-job"]).code == 4)
            let again = try await admin(["cancel", q, b])
            #expect(again.code == 1 && again.out.contains("already cancelled"))

            let refused = try await admin(["remove", q, a])
            #expect(refused.code == 1 && refused.out.contains("refused: the job is running"))

            let retried = try await admin(["retry", q, b, "--json"])
            #expect(retried.code == 0 && jsonArray(retried.out)?.first?["outcome"] as? String == "retried")
            #expect(try await queue.inspector.job(b)?.state == .waiting)
            let wrong = try await admin(["retry", q, b])
            #expect(wrong.code == 1 && wrong.out.contains("only failed and cancelled"))

            let removed = try await admin(["remove", q, b, "--json"])
            #expect(removed.code == 0 && jsonArray(removed.out)?.first?["state"] as? String == "waiting")

            let f = try await queue.add(name: "f", payload: .json("{}"), options: .init(attempts: 1)).id
            let (_, leaseF) = try #require(try await queue.takeJob())
            _ = try await queue.core.finish(f, token: leaseF.token, end: .unrecoverable(reason: "bad", details: ""), next: nil)
            #expect(try await queue.inspector.job(f)?.state == .failed)
            let allFailed = try await admin(["retry", q, "--all-failed", "--json"])
            #expect(jsonObject(allFailed.out)?["retried"] as? Int == 1, "\(allFailed)")
            #expect(try await queue.inspector.job(f)?.state == .waiting)

            #expect(try await admin(["pause", q]).out.contains("\(q) paused"))
            #expect(try await admin(["pause", q]).out.contains("already paused"))
            #expect(try await queue.inspector.counts().paused)
            #expect(jsonObject(try await admin(["resume", q, "--json"]).out)?["changed"] as? Bool == true)
            #expect(try await queue.inspector.counts().paused == false)

            for i in 0..<4 {
                let id = try await queue.add(name: "c\(i)", payload: .json("{}")).id
                _ = try await queue.cancel(id)
            }
            let cleaned = try await admin(["clean", q, "--state", "cancelled", "--limit", "3", "--json"])
            #expect(jsonObject(cleaned.out)?["removed"] as? Int == 3, "\(cleaned)")
            #expect(try await queue.inspector.counts().cancelled == 1)

            let retention = try await admin(["retention", q, "--completed", "3", "--json"])
            #expect(jsonObject(retention.out)?["completed"] as? Int == 3 && jsonObject(retention.out)?["failed"] as? Int == 5)

            for i in 0..<5 { _ = try await queue.add(name: "p\(i)", payload: .json("{}"), options: JobOptions(delay: i % 2 == 0 ? nil : .seconds(600))) }
            let unconfirmed = try await admin(["purge", q])
            #expect(unconfirmed.code == 2 && unconfirmed.err.contains("purge needs --yes when stdin is not a terminal"), "\(unconfirmed.err)")
            let purged = try await admin(["drain", q, "--yes", "--json"])
            #expect(jsonObject(purged.out)?["removed"] as? Int == 6, "the 5 added and the retried one: \(purged)")

            let notPaused = try await admin(["obliterate", q, "--yes"])
            #expect(notPaused.code == 1 && notPaused.err.contains("pause"), "\(notPaused)")
            let gone = try await admin(["obliterate", q, "--yes", "--force"])
            #expect(gone.code == 0 && gone.out.contains("obliterated \(q)"), "\(gone)")
            #expect(try await queue.inspector.job(a) == nil)

            // A live worker shows up with its queue.
            let other = try await uniqueQueue()
            var handlers = JobHandlers()
            handlers.register(name: "x") { _, _ in [] }
            let client = try await SharedRedis.client()
            try await withWorker(other, concurrency: 3, handlers: handlers) { _ in
                try await eventually(20, "the worker's heartbeat") { !(try await WorkerInfo.list(client: client, queue: other.name)).isEmpty }
                let listed = try #require(jsonArray(try await admin(["workers", other.name, "--json"]).out))
                #expect(listed.count == 1 && listed.first?["concurrency"] as? Int == 3 && listed.first?["pid"] as? Int == Int(getpid()))
                let table = try await admin(["workers"])
                #expect(table.out.contains("ACTIVE") && table.out.contains("0/3") && table.out.contains(other.name), "\(table.out)")
            }
        }

        @Test("bad input: one-line errors with exit codes 2, 3 and 4; JSON errors; no password echoed")
        func badInput() async throws {
            let url = try await SharedRedis.instance.server().url
            let q = "t-admin-bad-\(UUID().uuidString.prefix(8))"
            func admin(_ args: [String]) async throws -> ProgramRun {
                try await runAdmin(args + ["--redis-url", url])
            }
            let duration = try await admin(["add", q, "x", "--delay", "5 parsecs"])
            #expect(duration.code == 2 && duration.err.contains("--delay"), "\(duration)")
            let json = try await admin(["add", q, "x", "--data", "{not json"])
            #expect(json.code == 2 && json.err.contains("not valid JSON"), "\(json)")
            let state = try await admin(["list", q, "--state", "sleeping"])
            #expect(state.code == 2 && state.err.contains("unknown state \"sleeping\""), "\(state)")
            let priority = try await admin(["add", q, "x", "--priority", "urgent"])
            #expect(priority.code == 2 && priority.err.contains("--priority"))
            let at = try await admin(["add", q, "x", "--at", "tomorrow"])
            #expect(at.code == 2 && at.err.contains("ISO 8601"))
            let backoff = try await admin(["add", q, "x", "--backoff", "random"])
            #expect(backoff.code == 2 && backoff.err.contains("--backoff"))
            let badQueue = try await admin(["counts", "a{b}"])
            #expect(badQueue.code == 2 && badQueue.err.contains("bad queue name"), "\(badQueue)")
            let cleanState = try await admin(["clean", q, "--state", "waiting"])
            #expect(cleanState.code == 2 && cleanState.err.contains("purge"))

            let missing = try await admin(["inspect", q, "no-such-job"])
            #expect(missing.code == 4 && missing.err.contains("no job no-such-job"), "\(missing)")
            let missingJSON = try await admin(["inspect", q, "no-such-job", "--json"])
            let error = try #require(jsonObject(missingJSON.err)?["error"] as? [String: Any], "\(missingJSON)")
            #expect(missingJSON.code == 4 && error["kind"] as? String == "notFound" && missingJSON.out.isEmpty)

            let port = try RedisServerProcess.freeLoopbackPort()
            let down = try await runAdmin(["queues", "--redis-url", "redis://127.0.0.1:\(port)"])
            #expect(down.code == 3 && down.err.contains("127.0.0.1:\(port)"), "\(down)")
            #expect(down.err.split(separator: "\n").count == 1, "one line")
            let secret = try await runAdmin(["queues", "--redis-url", "redis://ops:hunter2@127.0.0.1:\(port)"])
            #expect(secret.code == 2 && !(secret.out + secret.err).contains("hunter2"))
            let envSecret = try await runAdmin(["queues", "--json"], environment: ["JOBQ_REDIS_URL": "redis://ops:hunter2@127.0.0.1:\(port)"])
            #expect(envSecret.code == 3 && !(envSecret.out + envSecret.err).contains("hunter2") && jsonObject(envSecret.err) != nil, "\(envSecret)")

            let help = try await runAdmin(["--help"])
            #expect(help.code == 0 && help.out.contains("4 not found") && help.out.contains("watch"))
        }

        @Test("watch draws counts, rates and a running job's progress bar in a terminal; q quits")
        func watch() async throws {
            let url = try await SharedRedis.instance.server().url
            let queue = try await uniqueQueue()
            let release = Latch()
            var handlers = JobHandlers()
            handlers.register(name: "render") { _, context in
                context.progress(percent: 40, message: "frames")
                await release.wait()
                return []
            }
            let id = try await queue.add(name: "render", payload: .json("{}")).id
            try await withWorker(queue, concurrency: 2, handlers: handlers) { _ in
                try await eventually(20, "the job to report progress") { try await queue.inspector.job(id)?.progress?.percent == 40 }
                let terminal = try PseudoTerminal()
                let path = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path + "/jobq-admin"
                let child = try ChildProcess(
                    executable: path, arguments: ["watch", queue.name, "--redis-url", url, "--interval", "200ms"],
                    environment: ["PATH": "/usr/bin:/bin", "TERM": "xterm"], terminal: terminal.secondaryPath)
                defer { child.signal(SIGKILL) }
                try await eventually(30, "two refreshes showing the running job") {
                    let screen = terminal.read()
                    return screen.components(separatedBy: "jobq watch —").count >= 3 && screen.contains(id) && screen.contains("40%")
                }
                _ = try await queue.add(name: "render", payload: .json("{}"))
                terminal.write("q")
                let status = try await within(20, "watch to quit on q") { await child.wait() }
                #expect(status == 0)
                let screen = terminal.read()
                #expect(screen.contains("RETRIED/S") && screen.contains(queue.name) && screen.contains("[########"), "\(screen.suffix(2000))")
                release.open()
            }

            let lines = try await runAdmin(["watch", queue.name, "--json", "--iterations", "2", "--interval", "100ms", "--redis-url", url])
            #expect(lines.code == 0, "\(lines.err)")
            let objects = lines.out.split(separator: "\n").compactMap { jsonObject(String($0)) }
            #expect(objects.count == 2 && (objects.first?["queues"] as? [[String: Any]])?.first?["queue"] as? String == queue.name)
        }

        @Test("watch fits an 80×24 terminal with 47 queues (wide-character names included) and workers fits 100 columns")
        func watchFitsTheTerminal() async throws {
            try await withPrivateRedis { server in
                let client = RedisClient(configuration: server.configuration)
                onTeardown { await client.close() }
                for i in 0..<46 { _ = try await JobQueue(name: "queue-number-\(i)", client: client).add(name: "x", payload: .json("{}")) }
                _ = try await JobQueue(name: "報告書の生成キュー🎉", client: client).add(name: "x", payload: .json("{}"))
                let terminal = try PseudoTerminal(rows: 24, columns: 80)
                let path = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path + "/jobq-admin"
                let child = try ChildProcess(
                    executable: path, arguments: ["watch", "--redis-url", server.url, "--interval", "200ms"],
                    environment: ["PATH": "/usr/bin:/bin", "TERM": "xterm"], terminal: terminal.secondaryPath)
                defer { child.signal(SIGKILL) }
                try await eventually(30, "two frames") { terminal.read().components(separatedBy: "jobq watch —").count >= 3 }
                terminal.write("q")
                _ = try await within(20, "watch to quit on q") { await child.wait() }
                let frames = terminal.read().components(separatedBy: "\u{1b}[H\u{1b}[2J").filter { $0.contains("jobq watch —") }
                let frame = try #require(frames.dropLast().last ?? frames.last)
                let rows = frame.components(separatedBy: "\r\n").filter { !$0.isEmpty && !$0.hasPrefix("\u{1b}[?25") }
                #expect(rows.count <= 24, "\(rows.count) rows:\n\(frame)")
                for row in rows { #expect(Self.columns(row) <= 80, "\(Self.columns(row)) columns: \(row)") }
                #expect(frame.contains("more queues"), "\(frame)")

                var workerConfiguration = WorkerConfiguration(
                    queues: (0..<12).map { .init("queue-number-\($0)") }, concurrency: 4,
                    workerID: "a-rather-long-worker-identifier-on-host-\(String(repeating: "x", count: 40))")
                workerConfiguration.maxBlockTimeout = .seconds(1)
                let worker = try Worker(client: client, configuration: workerConfiguration, handlers: JobHandlers())
                let running = Task { try await worker.run() }
                try await eventually(20, "the worker's heartbeat") { try await WorkerInfo.list(client: client).count == 1 }
                let listed = try await runAdmin(["workers", "--redis-url", server.url])
                worker.shutdown()
                try await running.value
                #expect(listed.code == 0, "\(listed.err)")
                for row in listed.out.split(separator: "\n") { #expect(Self.columns(String(row)) <= 100, "\(row)") }
                #expect(listed.out.contains("…"), "\(listed.out)")
            }
        }

        /// Terminal columns of a line with its escape sequences dropped.
        static func columns(_ line: String) -> Int {
            // The tty turns each \n into \r\n: carriage returns take no column.
            let plain = line.replacingOccurrences(of: "\u{1b}\\[[0-9;?]*[A-Za-z]", with: "", options: .regularExpression)
                .replacingOccurrences(of: "\r", with: "")
            return plain.reduce(0) { total, c in
                let v = c.unicodeScalars.first!.value
                return total + ((0x3000...0x9FFF).contains(v) || (0x1F300...0x1F9FF).contains(v) || (0xFF00...0xFF60).contains(v) ? 2 : 1)
            }
        }
    }
}
