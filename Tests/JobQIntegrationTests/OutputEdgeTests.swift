import Foundation
import LocalRedis
import Testing

@testable import JobQ
@testable import JobQRedis

extension ExecutableTests {
    /// What the binaries print when the reader goes away, and what they never print (secrets).
    @Suite("Executables: closed stdout and secrets", .awaitedTeardown)
    struct OutputEdgeTests {
        /// Runs `command` in bash; returns the exit status of the first program of its pipeline.
        static func pipeline(_ command: String) async throws -> (code: Int32, output: String) {
            let binDir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
            let output = FileManager.default.temporaryDirectory.appendingPathComponent("jobq-pipe-\(UUID().uuidString).txt").path
            defer { try? FileManager.default.removeItem(atPath: output) }
            let child = try ChildProcess(
                executable: "/bin/bash", arguments: ["-c", "cd '\(binDir)' && " + command + "; exit ${PIPESTATUS[0]}"],
                environment: ["PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": NSTemporaryDirectory()], outputPath: output)
            let status = try await within(120, "the pipeline to end") { await child.wait() }
            let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
            return (WaitStatus(status).code, text)
        }

        @Test("a closed stdout ends jobq-admin quietly with status 0 (| head -1, | true), never a trap")
        func closedStdout() async throws {
            let server = try await SharedRedis.instance.server()
            let client = try await SharedRedis.client()
            let queue = try JobQueue(name: "closed-stdout-\(UUID().uuidString.prefix(8))", client: client)
            let added = try await queue.addBulk((0..<1500).map { i in .init(name: "job-\(i)", payload: .json(#"{"i":\#(i)}"#)) })
            let id = try #require(try added.first?.get().id)
            for command in [
                "./jobq-admin list \(queue.name) --limit 1000 --redis-url \(server.url) | head -1 > /dev/null",
                "./jobq-admin list \(queue.name) --limit 1000 --json --redis-url \(server.url) | head -c 10 > /dev/null",
                "./jobq-admin inspect \(queue.name) \(id) --redis-url \(server.url) | true",
                "./jobq-admin queues --redis-url \(server.url) | true",
                "./jobq-worker --help | true",
            ] {
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
            let check = try await runTool(
                "jobq-worker", ["--queue", "q", "--handler", "hook=http:http://hookuser:hunter22@127.0.0.1:9/x", "--check-config"],
                environment: ["JOBQ_REDIS_URL": "redis://127.0.0.1:6379"])
            #expect(check.code == 0, "\(check.output)")
            #expect(!check.output.contains("hunter22") && check.output.contains("hookuser:***@127.0.0.1"), "\(check.output)")
        }

        @Test("control characters and ANSI escapes in stored text are shown escaped for terminals; --json stays exact")
        func terminalEscapes() async throws {
            let server = try await SharedRedis.instance.server()
            let client = try await SharedRedis.client()
            let queue = try JobQueue(name: "ansi-\(UUID().uuidString.prefix(8))", client: client)
            let hostile = "\u{1B}]0;pwned\u{07}\u{1B}[2J\u{1B}[31mred\r\u{202E}evil\u{9B}x"
            let added = try await queue.add(name: "ansi", payload: .json("{}"), options: .init(attempts: 1))
            let (_, lease) = try #require(try await queue.takeJob())
            _ = try await queue.core.setProgress(added.id, token: lease.token, percent: 10, message: hostile)
            _ = try await queue.core.finish(
                added.id, token: lease.token, end: .failed(reason: "bad\u{1B}[0m", details: "line 1\n" + hostile, retryDelayMs: nil), next: nil)
            for args in [["inspect", queue.name, added.id], ["list", queue.name], ["queues"]] {
                let run = try await runAdmin(args + ["--redis-url", server.url])
                #expect(run.code == 0, "\(args): \(run.err)")
                #expect(
                    !run.out.unicodeScalars.contains { $0.value == 0x1B || $0.value == 0x07 || $0.value == 0x9B || $0 == "\r" || $0.value == 0x202E },
                    "\(args): raw control characters in \(run.out.debugDescription)")
                if args[0] == "inspect" { #expect(run.out.contains("\\e]0;pwned") && run.out.contains("\\u{202E}evil"), "\(run.out)") }
            }
            let json = try await runAdmin(["inspect", queue.name, added.id, "--json", "--redis-url", server.url])
            let object = try #require(jsonObject(json.out))
            let error = try #require(object["error"] as? [String: Any])
            #expect((error["details"] as? String) == "line 1\n" + hostile, "--json is exact")
            // An error message naming a hostile id stays on one line.
            let missing = try await runAdmin(["inspect", queue.name, "no\u{1B}[2Jsuch", "--redis-url", server.url])
            #expect(missing.code == 4 && missing.err.split(separator: "\n").count == 1 && !missing.err.contains("\u{1B}"), "\(missing.err.debugDescription)")
        }
    }
}
