import Foundation
import LocalRedis

/// What a program of this package printed and how it ended.
struct ProgramRun: Sendable {
    /// The exit code, or 128 + the signal that killed it.
    var code: Int32
    var out: String
    var err: String
    /// stdout, then stderr.
    var output: String { out + err }
}

/// Runs a built executable of this package (`jobq-admin`, `jobq-worker`, `jobq-bench`…) with an
/// explicit environment — never an inherited `JOBQ_REDIS_URL` — and `input` on stdin, within a
/// generous deadline.
func runProgram(_ name: String, _ arguments: [String], environment: [String: String] = [:], input: String? = nil, timeout: Double = 120) async throws
    -> ProgramRun
{
    let path = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path + "/" + name
    guard FileManager.default.isExecutableFile(atPath: path) else { throw TimedOut(what: "\(path) to exist (run swift build first)") }
    let base = FileManager.default.temporaryDirectory.appendingPathComponent("jobq-\(name)-\(UUID().uuidString)").path
    defer { for suffix in [".out", ".err", ".in"] { try? FileManager.default.removeItem(atPath: base + suffix) } }
    if let input { try input.write(toFile: base + ".in", atomically: true, encoding: .utf8) }
    var env = ["PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": NSTemporaryDirectory(), "USER": "tester"]
    env.merge(environment) { $1 }
    let child = try ChildProcess(
        executable: path, arguments: arguments, environment: env, outputPath: base + ".out",
        errorPath: base + ".err", inputPath: input == nil ? nil : base + ".in")
    let status = try await within(timeout, "\(name) to exit") { await child.waitStatus() }
    let out = (try? String(contentsOfFile: base + ".out", encoding: .utf8)) ?? ""
    let err = (try? String(contentsOfFile: base + ".err", encoding: .utf8)) ?? ""
    return ProgramRun(code: status.code, out: out, err: err)
}

/// `jobq-admin`, stdout and stderr apart.
func runAdmin(_ arguments: [String], environment: [String: String] = [:], input: String? = nil) async throws -> ProgramRun {
    try await runProgram("jobq-admin", arguments, environment: environment, input: input)
}

/// Any tool of this package; `output` holds stdout and stderr.
func runTool(_ name: String, _ arguments: [String], environment: [String: String] = [:], timeout: Double = 120) async throws -> ProgramRun {
    try await runProgram(name, arguments, environment: environment, timeout: timeout)
}

func jsonObject(_ text: String) -> [String: Any]? {
    (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any]
}

func jsonArray(_ text: String) -> [[String: Any]]? {
    (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [[String: Any]]
}
