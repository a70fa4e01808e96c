import AsyncHTTPClient
import Foundation
import JobQ
import LocalRedis
import NIOCore
import NIOHTTP1
import Testing

@Suite("Executables", .serialized, .awaitedTeardown)
struct ExecutableTests {
    @Suite("jobq-admin ping", .awaitedTeardown)
    struct AdminPing {
        @Test("reports version and durability as text and as JSON")
        func ok() async throws {
            let server = try await SharedRedis.instance.server()
            let text = try await runTool("jobq-admin", ["ping", "--redis-url", server.url])
            #expect(text.code == 0, "\(text.output)")
            #expect(text.output.contains("version    7."))
            #expect(text.output.contains("AT RISK"))  // the test server runs without AOF
            let json = try await runTool("jobq-admin", ["ping", "--json"], environment: ["JOBQ_REDIS_URL": server.url])
            #expect(json.code == 0, "\(json.output)")
            let object = try JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [String: Any]
            #expect(object?["aof"] as? Bool == false)
            #expect((object?["durabilityProblems"] as? [String])?.count == 1)
        }

        @Test("exit 3 when Redis is unreachable, 2 for a bad URL or a password in --redis-url")
        func failures() async throws {
            let port = try RedisServerProcess.freeLoopbackPort()
            let down = try await runTool("jobq-admin", ["ping", "--redis-url", "redis://127.0.0.1:\(port)"])
            #expect(down.code == 3, "\(down.output)")
            #expect(down.output.contains("127.0.0.1:\(port)"))
            let downJSON = try await runTool("jobq-admin", ["ping", "--json", "--redis-url", "redis://127.0.0.1:\(port)"])
            #expect(downJSON.code == 3)
            let error = try JSONSerialization.jsonObject(with: Data(downJSON.output.utf8)) as? [String: [String: Any]]
            #expect(error?["error"]?["exitCode"] as? Int == 3 && (error?["error"]?["kind"] as? String)?.isEmpty == false)

            let bad = try await runTool("jobq-admin", ["ping", "--redis-url", "redis://host:99999"])
            #expect(bad.code == 2, "\(bad.output)")
            #expect(bad.output.contains("port"))
            let secret = try await runTool("jobq-admin", ["ping", "--redis-url", "redis://u:hunter2@127.0.0.1:\(port)"])
            #expect(secret.code == 2)
            #expect(!secret.output.contains("hunter2"))
            let usage = try await runTool("jobq-admin", ["ping", "--no-such-flag"])
            #expect(usage.code == 2)
        }

        @Test("exit 3 when the password is refused, and the password never shows")
        func authRefused() async throws {
            try await withPrivateRedis(.init(transport: .tcp, password: "right-one")) { server in
                let refused = try await runTool("jobq-admin", ["ping", "--redis-url", server.url], environment: ["JOBQ_REDIS_PASSWORD": "wrong-one"])
                #expect(refused.code == 3, "\(refused.output)")
                #expect(refused.output.contains("authFailed"))
                #expect(!refused.output.contains("wrong-one"))
                let accepted = try await runTool("jobq-admin", ["ping", "--redis-url", server.url], environment: ["JOBQ_REDIS_PASSWORD": "right-one"])
                #expect(accepted.code == 0, "\(accepted.output)")
            }
        }
    }

    @Suite("jobq-worker start-up checks", .awaitedTeardown)
    struct WorkerChecks {
        @Test("logs the durability problem and runs; --require-durable makes it exit 78")
        func durability() async throws {
            let server = try await SharedRedis.instance.server()
            let worker = try WorkerProcess(["--redis-url", server.url, "--queue", "checks-\(UUID().uuidString.prefix(6))", "--handler", "x=echo"])
            try await worker.waitForLog("worker started")
            #expect(worker.log.contains("AOF is off"))
            worker.process.signal(SIGTERM)
            #expect(try await worker.exitCode() == 0, "\(worker.log)")
            let strict = try await runTool("jobq-worker", ["--redis-url", server.url, "--require-durable", "--queue", "q", "--handler", "x=echo"])
            #expect(strict.code == 78, "\(strict.output)")
        }

        @Test("eviction on (AOF on): the worker logs that jobs could be evicted; --require-durable makes it exit 78")
        func eviction() async throws {
            try await withPrivateRedis(.init(appendFsync: "everysec", extraArguments: ["--maxmemory-policy", "allkeys-lru"])) { server in
                let worker = try WorkerProcess(["--redis-url", server.url, "--queue", "q", "--handler", "x=echo"])
                try await worker.waitForLog("worker started")
                #expect(worker.log.contains("allkeys-lru"), "\(worker.log)")
                #expect(!worker.log.contains("AOF is off"))
                worker.process.signal(SIGTERM)
                #expect(try await worker.exitCode() == 0, "\(worker.log)")
                let strict = try await runTool("jobq-worker", ["--redis-url", server.url, "--require-durable", "--queue", "q", "--handler", "x=echo"])
                #expect(strict.code == 78 && strict.output.contains("allkeys-lru"), "\(strict.output)")
            }
        }

        @Test("a durable Redis (AOF, noeviction) passes --require-durable")
        func durableServer() async throws {
            try await withPrivateRedis(.init(appendFsync: "everysec")) { server in
                let worker = try WorkerProcess(["--redis-url", server.url, "--require-durable", "--queue", "q", "--handler", "x=echo"])
                try await worker.waitForLog("worker started")
                #expect(!worker.log.contains("not durable"))
                worker.process.signal(SIGTERM)
                #expect(try await worker.exitCode() == 0, "\(worker.log)")
            }
        }

        @Test("an unreachable Redis exits 3; bad configuration exits 78 naming the key, the value and what is expected")
        func unreachableAndBadConfig() async throws {
            let port = try RedisServerProcess.freeLoopbackPort()
            let down = try await runTool("jobq-worker", ["--redis-url", "redis://127.0.0.1:\(port)", "--queue", "q", "--handler", "x=echo"])
            #expect(down.code == 3, "\(down.output)")
            let bad = try await runTool("jobq-worker", ["--redis-url", "nonsense", "--queue", "q", "--handler", "x=echo"])
            #expect(bad.code == 78, "\(bad.output)")
            let concurrency = try await runTool("jobq-worker", ["--queue", "q", "--handler", "x=echo"], environment: ["JOBQ_WORKER_CONCURRENCY": "lots"])
            #expect(concurrency.code == 78)
            #expect(concurrency.output.contains("worker.concurrency = \"lots\": expected an integer"), "\(concurrency.output)")
            let kind = try await runTool("jobq-worker", ["--queue", "q", "--handler", "x=teleport"])
            #expect(kind.code == 78 && kind.output.contains("handlers = \"x=teleport\""), "\(kind.output)")
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("jobq-\(UUID().uuidString).yaml").path
            try "worker:\n  queues: [\"a{b}\"]\nhandlers: [\"x=echo\"]\n".write(toFile: file, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(atPath: file) }
            let brace = try await runTool("jobq-worker", ["--config", file])
            #expect(brace.code == 78 && brace.output.contains("worker.queues = \"a{b}\""), "\(brace.output)")
            let usage = try await runTool("jobq-worker", ["--no-such-flag"])
            #expect(usage.code == 2)
            // The documented example file is valid.
            let example = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent("config/jobq.yaml").path
            let documented = try await runTool("jobq-worker", ["--config", example, "--redis-url", "redis://127.0.0.1:\(port)"])
            #expect(documented.code == 3, "the example config loads; only Redis is missing: \(documented.output)")
        }
    }

    @Suite("jobq-worker processes", .awaitedTeardown)
    struct WorkerProcesses {
        @Test("kill -9 of a worker mid-job: the job completes on another worker and ends exactly once")
        func killNine() async throws {
            let server = try await SharedRedis.instance.server()
            let client = RedisClient(configuration: server.configuration)
            onTeardown { await client.close() }
            let queue = try JobQueue(name: "kill9-\(UUID().uuidString.prefix(8))", client: client)
            let args = ["--redis-url", server.url, "--queue", queue.name, "--handler", "slow=demo", "--lease", "1s", "--concurrency", "1"]
            let first = try WorkerProcess(args + ["--worker-id", "first"])
            try await first.waitForLog("worker started")
            let added = try await queue.add(name: "slow", payload: .json(#"{"sleep_ms": 3000}"#))
            try await eventually(20, "the first worker took the job") { try await queue.inspector.job(added.id)?.workerID == "first" }
            first.process.signal(SIGKILL)
            _ = try await first.exitCode()
            let second = try WorkerProcess(args + ["--worker-id", "second"])
            try await second.waitForLog("worker started")
            try await queue.expectEvents(.completed, job: added.id, within: 30)
            let job = try #require(try await queue.inspector.job(added.id))
            #expect(job.workerID == "second" && job.stallCount == 1 && job.attemptsMade == 1, "the stall gave its attempt back")
            let kinds = try await queue.eventKinds(for: added.id)
            #expect(kinds.filter { ["completed", "failed", "cancelled"].contains($0) } == ["completed"], "\(kinds)")
            #expect(kinds.contains("stalled"))
            second.process.signal(SIGTERM)
            #expect(try await second.exitCode() == 0, "\(second.log)")
        }

        @Test("/metrics counts jobs by queue and name; /health and /health/ready answer; an idle worker is visible")
        func metrics() async throws {
            let server = try await SharedRedis.instance.server()
            let client = RedisClient(configuration: server.configuration)
            onTeardown { await client.close() }
            let queue = try JobQueue(name: "metrics-\(UUID().uuidString.prefix(8))", client: client)
            let worker = try WorkerProcess(["--redis-url", server.url, "--queue", queue.name, "--handler", "e=echo", "--metrics-port", "0", "--lease", "1s"])
            try await worker.waitForLog("/metrics")
            let line = try #require(worker.log.split(separator: "\n").first { $0.contains("metrics and health on") })
            let url = String(line[line.range(of: "http://")!.lowerBound...].prefix { !$0.isWhitespace })
            let base = String(url.dropLast("/metrics".count))
            for _ in 0..<3 { _ = try await queue.add(name: "e", payload: .json("{}")) }
            try await queue.expectEvents(.completed, count: 3, within: 20)
            let http = HTTPClient(eventLoopGroupProvider: .singleton)
            onTeardown { try? await http.shutdown() }
            @Sendable func get(_ path: String) async throws -> (Int, String) {
                let response = try await http.execute(HTTPClientRequest(url: base + path), timeout: .seconds(10))
                let body = try await response.body.collect(upTo: 1 << 20)
                return (Int(response.status.code), String(buffer: body))
            }
            @Sendable func sample(_ text: String, _ metric: String, _ labels: [String]) -> Double? {
                for line in text.split(separator: "\n") where line.hasPrefix(metric + "{") && labels.allSatisfy({ line.contains($0) }) {
                    return Double(line.split(separator: " ").last ?? "")
                }
                return nil
            }
            let queueLabel = "queue=\"\(queue.name)\""
            try await eventually(20, "the completed counter in /metrics") {
                let (code, text) = try await get("/metrics")
                return code == 200 && sample(text, "jobq_jobs_completed_total", [queueLabel, "name=\"e\""]) == 3
            }
            let (_, text) = try await get("/metrics")
            #expect(text.contains("jobq_handler_duration_seconds"))
            #expect(text.contains("jobq_jobs_started_total"))
            try await eventually(20, "queue depth gauges") { sample(try await get("/metrics").1, "jobq_queue_jobs", [queueLabel, "state=\"completed\""]) == 3 }
            #expect(try await get("/health").0 == 200)
            #expect(try await get("/health/ready").0 == 200)
            worker.process.signal(SIGTERM)
            #expect(try await worker.exitCode() == 0, "\(worker.log)")
        }

        @Test("SIGTERM requeues a running job with no attempt used and exits 0; a second signal exits at once")
        func sigterm() async throws {
            let server = try await SharedRedis.instance.server()
            let client = RedisClient(configuration: server.configuration)
            onTeardown { await client.close() }
            let queue = try JobQueue(name: "term-\(UUID().uuidString.prefix(8))", client: client)
            let args = ["--redis-url", server.url, "--queue", queue.name, "--handler", "slow=sleep:20s"]
            let worker = try WorkerProcess(args + ["--shutdown-grace", "300ms"])
            try await worker.waitForLog("worker started")
            let added = try await queue.add(name: "slow", payload: .json("{}"))
            try await eventually(20, "the job is running") { try await queue.inspector.job(added.id)?.state == .active }
            worker.process.signal(SIGTERM)
            #expect(try await worker.exitCode() == 0, "\(worker.log)")
            let job = try #require(try await queue.inspector.job(added.id))
            #expect(job.state == .waiting && job.attemptsMade == 0, "\(job.state) \(job.attemptsMade)")

            // Two signals: out at once (exit 1), the job left for the leases to recover.
            let impatient = try WorkerProcess(args + ["--shutdown-grace", "60s"])
            try await impatient.waitForLog("worker started")
            try await eventually(20, "the job is running again") { try await queue.inspector.job(added.id)?.state == .active }
            impatient.process.signal(SIGTERM)
            try await impatient.waitForLog("shutting down")
            impatient.process.signal(SIGTERM)
            #expect(try await impatient.exitCode() == 1, "\(impatient.log)")
        }

        @Test("SIGTERM with an exec program that ignores it: jobq-worker exits only once the program is gone (SIGKILL after its kill delay)")
        func stubbornExecOutlivesNothing() async throws {
            let server = try await SharedRedis.instance.server()
            let client = RedisClient(configuration: server.configuration)
            onTeardown { await client.close() }
            let queue = try JobQueue(name: "stubborn-\(UUID().uuidString.prefix(8))", client: client)
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("jobq-stubborn-\(UUID().uuidString)").path
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            onTeardown { try? FileManager.default.removeItem(atPath: directory) }
            let script = directory + "/stubborn.sh"
            try "#!/bin/sh\ntrap '' TERM\necho $$ > '\(directory)/pid'\nwhile :; do sleep 0.1; done\n".write(toFile: script, atomically: true, encoding: .utf8)
            chmod(script, 0o755)
            let worker = try WorkerProcess([
                "--redis-url", server.url, "--queue", queue.name, "--handler", "stubborn=exec:\(script)", "--shutdown-grace", "300ms",
            ])
            try await worker.waitForLog("worker started")
            _ = try await queue.add(name: "stubborn", payload: .json("{}"))
            try await eventually(20, "the program to start") { FileManager.default.fileExists(atPath: directory + "/pid") }
            let text = try String(contentsOfFile: directory + "/pid", encoding: .utf8)
            let pid = try #require(Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)))
            worker.process.signal(SIGTERM)
            #expect(try await worker.exitCode() == 0, "\(worker.log)")
            #expect(kill(pid, 0) != 0 && errno == ESRCH, "the program \(pid) outlived its worker")
        }
    }
}

/// A `jobq-worker` process started for a test: explicit environment, output in a temp file,
/// killed by PID if the test leaves it running.
final class WorkerProcess: Sendable {
    let process: ChildProcess
    let outputPath: String

    init(_ arguments: [String], environment: [String: String] = [:]) throws {
        let binDir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
        outputPath = FileManager.default.temporaryDirectory.appendingPathComponent("jobq-worker-\(UUID().uuidString).log").path
        var env = ["PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": NSTemporaryDirectory()]
        env.merge(environment) { $1 }
        process = try ChildProcess(executable: binDir + "/jobq-worker", arguments: arguments, environment: env, outputPath: outputPath)
    }

    deinit {
        if !process.hasExited { process.signal(SIGKILL) }
        try? FileManager.default.removeItem(atPath: outputPath)
    }

    var log: String { (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "" }

    func waitForLog(_ text: String, seconds: Double = 30) async throws {
        try await eventually(seconds, "\"\(text)\" in the worker's log") { [self] in
            if process.hasExited { throw TimedOut(what: "\"\(text)\" (the worker exited: \(log))") }
            return log.contains(text)
        }
    }

    /// The exit code (128 + signal when killed), within a generous deadline.
    func exitCode() async throws -> Int32 {
        let status = try await within(60, "the worker to exit") { await self.process.wait() }
        return WaitStatus(status).code
    }
}
