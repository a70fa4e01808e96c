import ArgumentParser
import Foundation
import JobQ

/// `jobq-admin`: the operator's command line. Exit codes (DESIGN §9): 0 success, 1 refused or
/// partly failed, 2 usage, 3 Redis unreachable or auth failed, 4 not found.
@main
struct JobQAdmin: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jobq-admin",
        abstract: "Inspect and operate jobq queues.",
        discussion: """
            Redis: --redis-url, else $JOBQ_REDIS_URL, else redis://127.0.0.1:6379. The password comes from
            --redis-password-file, $JOBQ_REDIS_PASSWORD or $JOBQ_REDIS_URL, never from --redis-url.

            Exit codes: 0 success, 1 refused or partly failed, 2 usage, 3 Redis unreachable or auth failed,
            4 not found. With --json, errors are one JSON object on stderr.
            """,
        subcommands: [Ping.self]
    )

    static func main() async {
        let wantsJSON = CommandLine.arguments.contains("--json")
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let failure as AdminFailure {
            report(failure, json: wantsJSON)
            Foundation.exit(failure.exitCode)
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                exit(withError: error)  // --help, --version
            }
            let message = fullMessage(for: error)
            if code == .validationFailure {
                report(AdminFailure(exitCode: 2, kind: "usage", message: message), json: wantsJSON)
                Foundation.exit(2)
            }
            report(AdminFailure(exitCode: 1, kind: "failed", message: message), json: wantsJSON)
            Foundation.exit(1)
        }
    }

    static func report(_ failure: AdminFailure, json: Bool) {
        let text: String
        if json {
            let object = ["error": ["kind": failure.kind, "message": failure.message, "exitCode": String(failure.exitCode)]]
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
            text = String(decoding: data, as: UTF8.self)
        } else {
            text = "jobq-admin: \(failure.message)"
        }
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }
}

/// Options every subcommand shares.
struct GlobalOptions: ParsableArguments {
    @Option(name: .customLong("redis-url"), help: "redis://[user@]host:port/db or unix:///path (no password here).")
    var redisURL: String?

    @Option(name: .customLong("redis-password-file"), help: "A file holding the Redis password.")
    var passwordFile: String?

    @Flag(name: .customLong("json"), help: "Machine-readable output: one JSON object or array.")
    var json = false

    /// The client, or a failure with exit code 2 (bad URL or flags) — never a crash.
    func makeClient() throws(AdminFailure) -> RedisClient {
        do {
            var configuration = try RedisConfiguration.commandLine(urlFlag: redisURL, passwordFile: passwordFile)
            configuration.retryDeadline = .seconds(5)
            configuration.clientName = "jobq-admin"
            return RedisClient(configuration: configuration)
        } catch {
            throw AdminFailure(exitCode: 2, kind: "usage", message: error.description)
        }
    }
}

/// A failure with its documented exit code.
struct AdminFailure: Error {
    let exitCode: Int32
    let kind: String
    let message: String

    init(exitCode: Int32, kind: String, message: String) {
        self.exitCode = exitCode
        self.kind = kind
        self.message = message
    }

    /// Maps a Redis error: unreachable or refused credentials → 3, anything else → 1.
    init(_ error: RedisError) {
        switch error.code {
        case .connectionFailed, .unavailable, .authFailed, .outcomeUnknown:
            self.init(exitCode: 3, kind: error.code.description, message: error.description)
        case .invalidURL:
            self.init(exitCode: 2, kind: "usage", message: error.description)
        default:
            self.init(exitCode: 1, kind: error.code.description, message: error.description)
        }
    }
}
