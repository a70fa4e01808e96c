import Foundation
import JobQ
import LocalRedis
import Testing

extension ExecutableTests {
    /// What the binaries print when the reader goes away, and what they never print (secrets).
    @Suite("Executables: closed stdout and secrets")
    struct OutputEdgeTests {
        /// Runs `command` in bash; returns the exit status of the first program of its pipeline.
        static func pipeline(_ command: String) async throws -> (code: Int32, output: String) {
            let binDir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
            let output = FileManager.default.temporaryDirectory.appendingPathComponent("jobq-pipe-\(UUID().uuidString).txt").path
            defer { try? FileManager.default.removeItem(atPath: output) }
            let child = try ChildProcess(executable: "/bin/bash", arguments: ["-c", "cd '\(binDir)' && " + command + "; exit ${PIPESTATUS[0]}"],
                                         environment: ["PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": NSTemporaryDirectory()], outputPath: output)
            let status = try await within(120, "the pipeline to end") { await child.wait() }
            let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
            return (status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f), text)
        }

        @Test("a closed stdout ends jobq-admin quietly with status 0 (| head -1, | true), never a trap")
        func closedStdout() async throws {
            let server = try await SharedRedis.instance.server()
            let client = try await SharedRedis.client()
            let queue = try JobQueue(name: "closed-stdout-\(UUID().uuidString.prefix(8))", client: client)
            let added = try await queue.addBulk((0..<1500).map { i in .init(name: "job-\(i)", payload: .json(#"{"i":\#(i)}"#)) })
            let id = try #require(try added.first?.get().id)
            for command in ["./jobq-admin list \(queue.name) --limit 1000 --redis-url \(server.url) | head -1 > /dev/null",
                            "./jobq-admin list \(queue.name) --limit 1000 --json --redis-url \(server.url) | head -c 10 > /dev/null",
                            "./jobq-admin inspect \(queue.name) \(id) --redis-url \(server.url) | true",
                            "./jobq-admin queues --redis-url \(server.url) | true",
                            "./jobq-worker --help | true"] {
                let run = try await Self.pipeline(command)
                #expect(run.code == 0, "\(command): exit \(run.code)\n\(run.output.prefix(2000))")
                #expect(!run.output.contains("Fatal error") && !run.output.contains("Backtrace"), "\(command)\n\(run.output.prefix(2000))")
            }
        }

        @Test("passwords with URL delimiters are never printed by either binary; --check-config hides an http handler's password")
        func secretsNeverEchoed() async throws {
            let secret = "Sup3r/Secret?x#y"
            for binary in ["jobq-admin", "jobq-worker"] {
                let args = binary == "jobq-admin" ? ["ping"] : ["--queue", "q", "--handler", "a=noop", "--check-config"]
                let run = try await runTool(binary, args, environment: ["JOBQ_REDIS_URL": "redis://u:\(secret)@127.0.0.1:6379"])
                #expect(run.code != 0, "\(binary) refuses the URL")
                #expect(!run.output.contains("Sup3r") && !run.output.contains("Secret"), "\(binary): \(run.output)")
                #expect(run.output.contains("percent-encode"), "\(binary) says what to do: \(run.output)")
            }
            let check = try await runTool("jobq-worker", ["--queue", "q", "--handler", "hook=http:http://hookuser:hunter22@127.0.0.1:9/x", "--check-config"],
                                          environment: ["JOBQ_REDIS_URL": "redis://127.0.0.1:6379"])
            #expect(check.code == 0, "\(check.output)")
            #expect(!check.output.contains("hunter22") && check.output.contains("hookuser:***@127.0.0.1"), "\(check.output)")
        }
    }
}
