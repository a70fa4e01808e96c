import AsyncHTTPClient
import Foundation
import JobQ
import JobQWorkerKit

/// A handler configured by name (`jobName=kind[:argument]`). Built-in kinds, for smoke tests,
/// demos and load tests:
/// - `sleep[:MIN[..MAX]]`: waits a random time in the range (default 100ms), reporting progress
///   at each quarter; stops at once when the job's token fires;
/// - `echo`: the payload becomes the result;
/// - `noop`: completes at once with no result (load tests: the queue's own cost, nothing else);
/// - `fail[:REASON]`: every run fails (retried per the job's attempts and backoff);
/// - `exec:/path/to/program [args…]`: runs the program per job (payload on stdin, protocol on
///   fd 3; see `ExecHandler`), the path absolute and executable;
/// - `http:URL`: POSTs the payload to the URL (see `HTTPHandler`: 2xx completes, 408/429/5xx
///   retry, other 4xx fail for good);
/// - `demo`: driven by the JSON payload: `{"sleep_ms": 800, "progress": true, "fail_attempts": 1,
///   "unrecoverable": false}` sleeps, reports progress, fails the first `fail_attempts` runs.
enum HandlerSpec: CustomStringConvertible {
    case sleep(min: Duration, max: Duration)
    case echo
    case noop
    case fail(reason: String)
    case demo
    case exec(ExecHandler)
    case http(URL)

    /// Why a spec of a known kind can never work (nil when it may): an `exec:` path that is
    /// not an executable file, an `http:` URL whose port is out of range or that has no host.
    static func problem(_ text: String) -> String? {
        if text.hasPrefix("exec:") {
            let words = text.dropFirst(5).split(separator: " ").map(String.init)
            guard let program = words.first else { return "exec:/absolute/path/to/program [args…]" }
            guard program.hasPrefix("/") else { return "an absolute program path after exec: (\(program) is relative)" }
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: program, isDirectory: &isDirectory) else { return "an existing program (\(program) does not exist)" }
            if isDirectory.boolValue { return "a program, not a directory (\(program))" }
            if !FileManager.default.isExecutableFile(atPath: program) { return "an executable file (\(program) is not executable by this user)" }
        } else if text.hasPrefix("http:") {
            let address = String(text.dropFirst(5))
            guard let url = URL(string: address), ["http", "https"].contains(url.scheme?.lowercased() ?? "") else {
                return "http:http(s)://host[:port]/path"
            }
            guard url.host?.isEmpty == false else { return "a URL with a host after http:" }
            if let port = url.port, !(1...65535).contains(port) { return "a port in 1…65535 (the URL says \(port))" }
            if url.port == nil, let authority = address.split(separator: "/").dropFirst(1).first, authority.contains(":"),
                let last = authority.split(separator: ":").last, !last.contains("]"), Int(last) == nil || Int(last)! > 65535
            {
                return "a port in 1…65535 (the URL says \(last))"
            }
        }
        return nil
    }

    static let kinds = "sleep[:MIN[..MAX]], echo, noop, fail[:REASON], demo, exec:/path/to/program [args…], http:http(s)://host/path"

    init?(parsing text: String) {
        let kind = text.prefix(while: { $0 != ":" })
        let argument = text.count > kind.count ? String(text.dropFirst(kind.count + 1)) : nil
        switch kind {
        case "sleep":
            guard let argument else {
                self = .sleep(min: .milliseconds(100), max: .milliseconds(100))
                return
            }
            let parts = argument.components(separatedBy: "..")
            guard let low = Duration(parsing: parts[0]) else { return nil }
            let high = parts.count > 1 ? Duration(parsing: parts[1]) : low
            guard let high, high >= low, parts.count <= 2 else { return nil }
            self = .sleep(min: low, max: high)
        case "echo":
            guard argument == nil else { return nil }
            self = .echo
        case "noop":
            guard argument == nil else { return nil }
            self = .noop
        case "fail":
            self = .fail(reason: argument ?? "configured to fail")
        case "demo":
            guard argument == nil else { return nil }
            self = .demo
        case "http":
            guard let argument, let url = URL(string: argument), ["http", "https"].contains(url.scheme?.lowercased() ?? ""),
                url.host?.isEmpty == false
            else { return nil }
            self = .http(url)
        case "exec":
            let words = (argument ?? "").split(separator: " ").map(String.init)
            guard let program = words.first, program.hasPrefix("/"), FileManager.default.isExecutableFile(atPath: program) else { return nil }
            self = .exec(ExecHandler(executable: program, arguments: Array(words.dropFirst())))
        default:
            return nil
        }
    }

    var description: String {
        switch self {
        case .sleep(let a, let b): "sleep:\(a)..\(b)"
        case .echo: "echo"
        case .noop: "noop"
        case .fail(let r): "fail:\(r)"
        case .demo: "demo"
        case .exec(let e): "exec:\(e.executable)"
        case .http(let url): "http:\(URLRedaction.redact(url.absoluteString))"
        }
    }

    struct DemoPayload: Decodable {
        var sleepMs: Int?
        var progress: Bool?
        var failAttempts: Int?
        var unrecoverable: Bool?

        enum CodingKeys: String, CodingKey {
            case sleepMs = "sleep_ms"
            case progress
            case failAttempts = "fail_attempts"
            case unrecoverable
        }
    }

    /// A failure asked for by configuration (`fail`) or by a demo payload; its reason is recorded.
    struct ConfiguredFailure: FailureReasonProviding, CustomStringConvertible {
        let description: String
        let failureReason: String
    }

    func handler(httpClient: HTTPClient?, throttleOn429: Bool = false) -> JobHandlers.Handler {
        switch self {
        case .http(let url):
            guard let httpClient else {
                return { _, _ in
                    throw UnrecoverableError("no HTTP client was started for \(url.absoluteString) (a bug in jobq-worker)", reason: "internalError")
                }
            }
            var http = HTTPHandler(url: url, client: httpClient)
            http.throttleQueueOn429 = throttleOn429
            return http.handler
        case .sleep(let low, let high):
            return { _, context in
                let lowMs = Int(low.components.seconds * 1000 + low.components.attoseconds / 1_000_000_000_000_000)
                let highMs = Int(high.components.seconds * 1000 + high.components.attoseconds / 1_000_000_000_000_000)
                let total = Int.random(in: lowMs...max(lowMs, highMs))
                try await Self.sleep(ms: total, context: context, progress: true)
                return Array(#"{"slept_ms":\#(total)}"#.utf8)
            }
        case .echo:
            return { job, _ in job.payload.bytes }
        case .noop:
            return { _, _ in [] }
        case .fail(let reason):
            return { _, context in throw ConfiguredFailure(description: "\(reason) (attempt \(context.attempt))", failureReason: reason) }
        case .exec(let exec):
            return exec.handler
        case .demo:
            return { job, context in
                let p = (try? job.payload.decode(DemoPayload.self)) ?? DemoPayload()
                let total = max(0, p.sleepMs ?? 100)
                if let failing = p.failAttempts, context.attempt <= failing {
                    try await Self.sleep(ms: total / 2, context: context, progress: false)
                    if p.unrecoverable == true { throw UnrecoverableError("planned failure", reason: "plannedFailure") }
                    throw ConfiguredFailure(
                        description: "planned failure on attempt \(context.attempt) of the first \(failing)", failureReason: "plannedFailure")
                }
                try await Self.sleep(ms: total, context: context, progress: p.progress ?? false)
                return Array(#"{"slept_ms":\#(total),"attempt":\#(context.attempt)}"#.utf8)
            }
        }
    }

    /// Sleeps in quarters, reporting progress, and stops when the job's token fires.
    static func sleep(ms: Int, context: JobContext, progress: Bool) async throws {
        for quarter in 1...4 {
            try await Task.sleep(for: .milliseconds(ms / 4))
            try context.checkCancellation()
            if progress { context.progress(percent: Double(quarter) * 25, message: "\(quarter * 25)%") }
        }
    }
}
