import Foundation
import LocalRedis
import Testing

@testable import JobQ
@testable import JobQRedis

/// Least privilege and secrets, with the built binaries, and the configuration loader
/// fed mutated files.
extension ExecutableTests {
    @Suite("Least privilege and secrets", .awaitedTeardown)
    struct SecurityTests {
        static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

        @Test(
            "jobq-worker and jobq-admin run under config/users.acl's users; passwords come from a file or the environment and show in no command line, log line or job environment"
        )
        func binariesUnderACLUsers() async throws {
            let temp = FileManager.default.temporaryDirectory.appendingPathComponent("jobq-sec-\(UUID().uuidString)").path
            try FileManager.default.createDirectory(atPath: temp, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: temp) }
            try FileManager.default.copyItem(atPath: Self.root.appendingPathComponent("config/users.acl").path, toPath: temp + "/users.acl")
            let server = try await RedisServerProcess.start(.init(extraArguments: ["--aclfile", temp + "/users.acl"]))
            onTeardown { await server.destroy() }
            guard case .unix(let socket) = server.endpoint else {
                Issue.record("expected a unix socket")
                return
            }
            let workerPassword = "CHANGE-ME-worker"
            let adminPassword = "CHANGE-ME-admin"

            // The worker's password in a 0600 file; the job runs a program that prints its environment.
            let passwordFile = temp + "/worker.password"
            _ = FileManager.default.createFile(atPath: passwordFile, contents: Data((workerPassword + "\n").utf8), attributes: [.posixPermissions: 0o600])
            let program = temp + "/print-env.sh"
            _ = FileManager.default.createFile(
                atPath: program, contents: Data("#!/bin/sh\ntr '\\0' '\\n' < /proc/self/environ\nexit 100\n".utf8), attributes: [.posixPermissions: 0o755])
            let binDir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
            let log = temp + "/worker.log"
            let queue = "sec-\(UUID().uuidString.prefix(6))"
            let worker = try ChildProcess(
                executable: binDir + "/jobq-worker",
                arguments: [
                    "--redis-url", "unix://jobq-worker@\(socket)", "--redis-password-file", passwordFile, "--queue", queue,
                    "--handler", "env=exec:\(program)", "--log-level", "debug", "--concurrency", "2",
                ],
                // A secret in the worker's own environment must not reach the job either.
                environment: ["PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": temp, "JOBQ_REDIS_PASSWORD": workerPassword, "APP_SECRET_TOKEN": "s3cr3t-token"],
                outputPath: log)
            defer { worker.signal(SIGKILL) }

            let adminEnvironment = ["JOBQ_REDIS_URL": "unix://jobq-admin@\(socket)", "JOBQ_REDIS_PASSWORD": adminPassword]
            let added = try await runTool("jobq-admin", ["add", queue, "env", "--data", "{}", "--json"], environment: adminEnvironment)
            #expect(added.code == 0, "\(added.output)")
            let id = try #require((try? JSONSerialization.jsonObject(with: Data(added.output.utf8)) as? [String: Any])?["id"] as? String, "\(added.output)")
            var inspected: [String: Any] = [:]
            let deadline = ContinuousClock.now + .seconds(30)
            while ContinuousClock.now < deadline {
                let run = try await runTool("jobq-admin", ["inspect", queue, id, "--json"], environment: adminEnvironment)
                inspected = (try? JSONSerialization.jsonObject(with: Data(run.output.utf8)) as? [String: Any]) ?? [:]
                if inspected["state"] as? String == "failed" { break }
                try await Task.sleep(for: .milliseconds(200))
            }
            #expect(inspected["state"] as? String == "failed", "the program exits 100 on purpose: \(inspected)")
            let details = "\(inspected["error"] ?? "")"
            #expect(details.contains("JOBQ_JOB_ID=\(id)"), "the job saw its own variables: \(details)")
            for secret in [workerPassword, adminPassword, "s3cr3t-token", "JOBQ_REDIS", "APP_SECRET"] {
                #expect(!details.contains(secret), "\(secret) reached the job's environment")
            }

            // The running worker's command line (what `ps` shows) holds no password.
            let cmdline = String(
                decoding: (try? FileHandle(forReadingFrom: URL(fileURLWithPath: "/proc/\(worker.pid)/cmdline")).readToEnd()) ?? Data(), as: UTF8.self)
            #expect(cmdline.contains("--redis-password-file") && !cmdline.contains(workerPassword), "\(cmdline)")

            // A command outside the worker's grant is refused by Redis.
            var workerUser = server.configuration
            workerUser.username = "jobq-worker"
            workerUser.password = workerPassword
            let direct = RedisClient(configuration: workerUser)
            #expect(try await direct.send("FLUSHALL").errorCode == "NOPERM")
            #expect(try await direct.send("CONFIG", "GET", "maxmemory").errorCode == "NOPERM")
            await direct.close()

            worker.signal(SIGTERM)
            let status = await worker.wait()
            #expect(status == 0, "graceful stop")
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            #expect(text.contains("worker started") && text.contains("debug"), "the log was written at debug level")
            for secret in [workerPassword, adminPassword, "s3cr3t-token"] {
                #expect(!text.contains(secret), "\(secret) appears in the worker's log")
            }
        }

        @Test("jobq-admin on a queue with a foreign value planted under its keys exits 1 with a keyConflict that says what to do")
        func adminKeyConflict() async throws {
            let server = try await SharedRedis.instance.server()
            let client = RedisClient(configuration: server.configuration)
            let queue = "planted-\(UUID().uuidString.prefix(6))"
            _ = try await client.send("SET", try QueueKeys(queue: queue).wait, "not a list")
            await client.close()
            let text = try await runTool("jobq-admin", ["counts", queue, "--redis-url", server.url])
            #expect(text.code == 1 && text.output.contains("keyConflict") && text.output.contains("TYPE"), "\(text.output)")
            let json = try await runTool("jobq-admin", ["add", queue, "x", "--json", "--redis-url", server.url])
            #expect(json.code == 1, "\(json.output)")
            let error = (try? JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [String: [String: Any]])?["error"]
            #expect(error?["kind"] as? String == "keyConflict", "\(json.output)")
            // Leave the shared server's queue overview clean for the other tests.
            let cleanup = RedisClient(configuration: server.configuration)
            _ = try await cleanup.send("DEL", try QueueKeys(queue: queue).wait)
            _ = try await cleanup.send("SREM", QueueKeys.queueRegistry, queue)
            await cleanup.close()
        }

        @Test("a worker whose Redis user lacks +info exits 78 naming the permission, not 3 (unreachable)")
        func workerWithoutInfo() async throws {
            try await withPrivateRedis { server in
                let admin = RedisClient(configuration: server.configuration)
                _ = try await admin.send("ACL", "SETUSER", "noinfo", "on", ">pw", "~*", "&*", "+@all", "-info")
                await admin.close()
                guard case .unix(let socket) = server.endpoint else {
                    Issue.record("expected a unix socket")
                    return
                }
                let run = try await runTool(
                    "jobq-worker", ["--redis-url", "unix://noinfo@\(socket)", "--queue", "q", "--handler", "a=noop"],
                    environment: ["JOBQ_REDIS_PASSWORD": "pw"], timeout: 60)
                #expect(run.code == 78 && run.output.contains("+info"), "\(run.output)")
            }
        }

        @Test("one broken queue does not hide the others: queues and watch list it as broken with the key and the fix, exit 1")
        func brokenQueueInOverview() async throws {
            try await withPrivateRedis { server in
                let client = RedisClient(configuration: server.configuration)
                onTeardown { await client.close() }
                let good = try JobQueue(name: "good", client: client)
                _ = try await good.add(name: "x", payload: .json("{}"))
                let bad = try JobQueue(name: "bad", client: client)
                _ = try await bad.add(name: "x", payload: .json("{}"))
                _ = try await client.send("DEL", bad.core.keys.meta)
                _ = try await client.send("SET", bad.core.keys.meta, "foreign")
                _ = try await client.send("SADD", QueueKeys.queueRegistry, "bad{name")
                let text = try await runTool("jobq-admin", ["queues", "--redis-url", server.url])
                #expect(text.code == 1, "\(text.output)")
                #expect(text.output.contains("good") && text.output.contains("BROKEN"), "\(text.output)")
                #expect(text.output.contains("jobq:{bad}:meta is a string (jobq keeps a hash there)"), "\(text.output)")
                #expect(text.output.contains("SREM jobq:queues"), "the unusable name gets its fix: \(text.output)")
                let json = try await runTool("jobq-admin", ["queues", "--json", "--redis-url", server.url])
                let rows = (try? JSONSerialization.jsonObject(with: Data(json.output.prefix { $0 != "\u{0}" }.utf8)) as? [[String: Any]]) ?? []
                #expect(rows.contains { $0["queue"] as? String == "good" && $0["waiting"] as? Int == 1 }, "\(json.output)")
                #expect(
                    rows.contains {
                        $0["queue"] as? String == "bad"
                            && ($0["broken"] as? [String: Any])?["keys"] as? [String] == ["jobq:{bad}:meta is a string (jobq keeps a hash there)"]
                    }, "\(json.output)")
                let watch = try await runTool("jobq-admin", ["watch", "--iterations", "1", "--json", "--redis-url", server.url])
                #expect(watch.code == 0 && watch.output.contains("\"queue\":\"good\"") && watch.output.contains("\"broken\":[{"), "\(watch.output)")
            }
        }

        @Test(
            "a user without permission for the queue registry or for scripts gets permissionDenied naming what is missing, never \"no queues\" or \"report a bug\""
        )
        func permissionErrors() async throws {
            try await withPrivateRedis { server in
                let admin = RedisClient(configuration: server.configuration)
                onTeardown { await admin.close() }
                _ = try await JobQueue(name: "p", client: admin).add(name: "x", payload: .json("{}"))
                _ = try await admin.send("ACL", "SETUSER", "noeval", "on", ">pw", "~*", "+@all", "-eval", "-evalsha", "-smembers")
                var configuration = server.configuration
                configuration.username = "noeval"
                configuration.password = "pw"
                let limited = RedisClient(configuration: configuration)
                onTeardown { await limited.close() }
                await #expect { try await QueueInspector.overview(client: limited) } throws: { error in
                    (error as? JobQError)?.code == .permissionDenied && "\(error)".contains("smembers")
                }
                await #expect { try await JobQueue(name: "p", client: limited).add(name: "x", payload: .json("{}")) } throws: { error in
                    guard let error = error as? JobQError else { return false }
                    return error.code == .permissionDenied && !error.description.contains("report this as a bug")
                }
            }
        }

        @Test("jobq-worker --check-config on 60 mutated configuration files: each exits 0 or 78 with a one-line reason, never a crash")
        func configFuzz() async throws {
            let temp = FileManager.default.temporaryDirectory.appendingPathComponent("jobq-cfg-\(UUID().uuidString)").path
            try FileManager.default.createDirectory(atPath: temp, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: temp) }
            let base = try String(contentsOfFile: Self.root.appendingPathComponent("config/jobq.yaml").path, encoding: .utf8)
                .split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            let junk = [
                "", ":", "- ", "{", "}", "[", "]", "\"", "'", "&a", "*a", "!!binary", "~", "null", "-1", "0", "1e400", "99999999999999999999",
                "\t", "é", "🎉", "\u{0}", "  x: 1", "redis: [", "queues: {a: 1}", "concurrency: -5", "lease: 1e300d", "handlers: [\"a=exec:/nope\"]",
            ]
            var rng = SplitMix64(seed: 0x636F_6E66)
            var valid = 0
            var refused = 0
            for i in 0..<60 {
                var lines = base
                for _ in 0..<Int.random(in: 1...3, using: &rng) {
                    let at = Int.random(in: 0..<max(1, lines.count), using: &rng)
                    switch Int.random(in: 0..<4, using: &rng) {
                    case 0: lines.insert(junk.randomElement(using: &rng)!, at: at)
                    case 1: if at < lines.count { lines.remove(at: at) }
                    case 2:
                        if at < lines.count, let colon = lines[at].firstIndex(of: ":") {
                            lines[at] = String(lines[at][...colon]) + " " + junk.randomElement(using: &rng)!
                        }
                    default: lines = Array(lines.prefix(at))
                    }
                }
                let path = temp + "/config-\(i).yaml"
                try lines.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
                let run = try await runTool("jobq-worker", ["--config", path, "--check-config"])
                #expect(run.code == 0 || run.code == 78, "config \(i) → exit \(run.code): \(run.output.suffix(500))\n\(lines.joined(separator: "\n"))")
                if run.code == 0 {
                    valid += 1
                    #expect(run.output.contains("configuration valid"))
                }
                if run.code == 78 {
                    refused += 1
                    #expect(run.output.hasPrefix("jobq-worker: ") && run.output.split(separator: "\n").count <= 2, "\(run.output)")
                }
            }
            #expect(valid + refused == 60)
        }
    }
}
