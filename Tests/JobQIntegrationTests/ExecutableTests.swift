import Foundation
import JobQ
import LocalRedis
import Testing

/// Runs a built executable of this package with an explicit environment (never an inherited
/// `JOBQ_REDIS_URL`) and returns its exit code and combined output.
func runTool(_ name: String, _ arguments: [String], environment: [String: String] = [:]) async throws -> (code: Int32, output: String) {
    let binDir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
    let path = binDir + "/" + name
    guard FileManager.default.isExecutableFile(atPath: path) else {
        throw TimedOut(what: "\(path) to exist (run swift build first)")
    }
    let output = FileManager.default.temporaryDirectory.appendingPathComponent("jobq-tool-\(UUID().uuidString).txt").path
    defer { try? FileManager.default.removeItem(atPath: output) }
    var env = ["PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": NSTemporaryDirectory()]
    env.merge(environment) { $1 }
    let child = try ChildProcess(executable: path, arguments: arguments, environment: env, outputPath: output)
    let status = try await within(120, "\(name) to exit") { await child.wait() }
    let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
    let exited = status & 0x7f == 0
    return (exited ? (status >> 8) & 0xff : 128 + (status & 0x7f), text)
}

@Suite("Executables", .serialized)
struct ExecutableTests {
    @Suite("jobq-admin ping")
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
            let error = try JSONSerialization.jsonObject(with: Data(downJSON.output.utf8)) as? [String: [String: String]]
            #expect(error?["error"]?["exitCode"] == "3")

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

    @Suite("jobq-worker start-up checks")
    struct WorkerChecks {
        @Test("logs the durability problem; --require-durable makes it exit 78")
        func durability() async throws {
            let server = try await SharedRedis.instance.server()
            let lax = try await runTool("jobq-worker", ["--redis-url", server.url])
            #expect(lax.code == 0, "\(lax.output)")
            #expect(lax.output.contains("AOF is off"))
            let strict = try await runTool("jobq-worker", ["--redis-url", server.url, "--require-durable"])
            #expect(strict.code == 78, "\(strict.output)")
        }

        @Test("a durable Redis (AOF, noeviction) passes --require-durable")
        func durableServer() async throws {
            try await withPrivateRedis(.init(appendFsync: "everysec")) { server in
                let result = try await runTool("jobq-worker", ["--redis-url", server.url, "--require-durable"])
                #expect(result.code == 0, "\(result.output)")
                #expect(!result.output.contains("not durable"))
            }
        }

        @Test("an unreachable Redis exits 3 and a bad URL exits 2")
        func unreachable() async throws {
            let port = try RedisServerProcess.freeLoopbackPort()
            let down = try await runTool("jobq-worker", ["--redis-url", "redis://127.0.0.1:\(port)"])
            #expect(down.code == 3, "\(down.output)")
            let bad = try await runTool("jobq-worker", ["--redis-url", "nonsense"])
            #expect(bad.code == 2, "\(bad.output)")
        }
    }
}
