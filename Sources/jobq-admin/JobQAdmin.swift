import ArgumentParser
import Foundation
import JobQ
import JobQCommandLine

/// `jobq-admin`: the operator's command line. Exit codes (`docs/configuration.md`): 0 success, 1 refused or
/// partly failed, 2 usage, 3 Redis unreachable or auth failed, 4 not found.
@main
struct JobQAdmin: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jobq-admin",
        abstract: "Inspect and operate jobq queues.",
        discussion: """
            Every command takes, before or after its name: --redis-url URL (redis://[user@]host:port/db or unix:///path; else $JOBQ_REDIS_URL, else redis://127.0.0.1:6379), --redis-password-file PATH (the password also comes from $JOBQ_REDIS_PASSWORD or $JOBQ_REDIS_URL, never from --redis-url), for rediss:// URLs --redis-tls-ca-file, --redis-tls-cert-file, --redis-tls-key-file, --redis-tls-server-name and --redis-tls-insecure-skip-verify (else $JOBQ_REDIS_TLS_*), and --json (machine-readable output: one JSON object or array).

            Durations: 500ms, 5s, 2m, 1h, 1d.

            Exit codes: 0 success; 1 refused or partly failed; 2 usage; 3 Redis unreachable or auth failed; 4 not found. With --json, an error is one JSON object on stderr: {"error": {"kind", "message", "exitCode"}}.
            """,
        version: "jobq-admin " + JobQVersion.current,
        subcommands: [
            Queues.self, Counts.self, List.self, Inspect.self, Add.self, Cancel.self, Retry.self, Remove.self,
            Clean.self, Pause.self, Resume.self, Limits.self, Groups.self, Schedules.self, ScheduleCommand.self, Purge.self, Obliterate.self,
            Retention.self, Workers.self,
            Watch.self, Ping.self,
        ]
    )

    static func main() async {
        StandardStreams.prepare()
        let wantsJSON = CommandLine.arguments.contains("--json")
        // `help NAME` with an unknown NAME is a usage error, not the root help with status 0.
        let arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.first == "help", arguments.count > 1, !arguments[1].hasPrefix("-") {
            let names = configuration.subcommands.map { $0._commandName }
            if !names.contains(arguments[1]) {
                report(
                    AdminFailure(
                        exitCode: 2, kind: "usage", message: "no command \"\(Output.safe(arguments[1]))\" (commands: \(names.joined(separator: ", ")))"),
                    json: wantsJSON)
                Foundation.exit(2)
            }
        }
        await guardedMain(arguments: globalOptionsAfterCommand(arguments)) { error in
            if let code = error as? ExitCode { Foundation.exit(code.rawValue) }
            if let failure = error as? AdminFailure {
                report(failure, json: wantsJSON)
                Foundation.exit(failure.exitCode)
            }
            let code = exitCode(for: error)
            if code == .success {
                exit(withError: error)  // --help, --version
            }
            // One line: the problem, and where help is (the usage block would bury it).
            let first = message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
            let message = first.replacingOccurrences(of: "Error: ", with: "") + " (see jobq-admin --help)"
            if code == .validationFailure {
                report(AdminFailure(exitCode: 2, kind: "usage", message: message), json: wantsJSON)
                Foundation.exit(2)
            }
            report(AdminFailure(exitCode: 1, kind: "failed", message: message), json: wantsJSON)
            Foundation.exit(1)
        }
    }

    /// `jobq-admin --redis-url URL --json queues` means `jobq-admin queues --redis-url URL --json`:
    /// the shared options may come before the command name too.
    static func globalOptionsAfterCommand(_ arguments: [String]) -> [String] {
        let valued = ["--redis-url", "--redis-password-file"] + RedisTLSFlags.valued
        var leading: [String] = []
        var i = 0
        while i < arguments.count {
            let a = arguments[i]
            if a == "--json" || a == "--redis-tls-insecure-skip-verify" {
                leading.append(a)
                i += 1
            } else if valued.contains(a), i + 1 < arguments.count {
                leading += [a, arguments[i + 1]]
                i += 2
            } else if valued.contains(where: { a.hasPrefix($0 + "=") }) {
                leading.append(a)
                i += 1
            } else {
                break
            }
        }
        guard !leading.isEmpty, i < arguments.count, !arguments[i].hasPrefix("-") else { return arguments }
        // A command with subcommands (`schedule add`): the options go after the subcommand.
        var words = 1
        if arguments[i] == ScheduleCommand.configuration.commandName, i + 1 < arguments.count, !arguments[i + 1].hasPrefix("-") { words = 2 }
        return Array(arguments[i..<(i + words)]) + leading + arguments[(i + words)...]
    }

    static func report(_ failure: AdminFailure, json: Bool) {
        let text: String
        if json {
            let object: [String: Any] = ["error": ["kind": failure.kind, "message": failure.message, "exitCode": Int(failure.exitCode)] as [String: Any]]
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
            text = String(decoding: data, as: UTF8.self)
        } else {
            text = "jobq-admin: \(Output.safe(failure.message))"
        }
        StandardStreams.err((text + "\n"))
    }
}

/// Options every subcommand shares.
struct GlobalOptions: ParsableArguments {
    @Option(name: .customLong("redis-url"), help: "redis://[user@]host:port/db or unix:///path (no password here).")
    var redisURL: String?

    @Option(name: .customLong("redis-password-file"), help: "A file holding the Redis password.")
    var passwordFile: String?

    @OptionGroup var tls: RedisTLSFlags

    @Flag(name: .customLong("redis-tls-insecure-skip-verify"), help: "rediss:// only: do not verify the server's certificate (tests only).")
    var tlsInsecureSkipVerify = false

    @Flag(name: .customLong("json"), help: "Machine-readable output: one JSON object or array.")
    var json = false

    var tlsOptions: RedisTLSOptions {
        var options = tls.options
        if tlsInsecureSkipVerify { options.insecureSkipVerify = true }
        return options
    }

    /// The client, or a failure with exit code 2 (bad URL or flags) — never a crash.
    func makeClient() throws(AdminFailure) -> RedisClient {
        do {
            var configuration = try RedisConfiguration.commandLine(urlFlag: redisURL, passwordFile: passwordFile, tls: tlsOptions)
            configuration.retryDeadline = .seconds(5)
            configuration.clientName = "jobq-admin"
            return RedisClient(configuration: configuration)
        } catch {
            throw AdminFailure(exitCode: 2, kind: "usage", message: error.description)
        }
    }
}

extension GlobalOptions {
    /// Runs `body` with a client, closes it, and turns every error into an ``AdminFailure`` with
    /// its documented exit code.
    func withClient<T>(_ body: (RedisClient) async throws -> T) async throws -> T {
        let client = try makeClient()
        do {
            let value = try await body(client)
            await client.close()
            return value
        } catch {
            await client.close()
            throw AdminFailure.from(error)
        }
    }

    func queue(_ name: String, _ client: RedisClient) throws -> JobQueue {
        do {
            return try JobQueue(name: name, client: client)
        } catch {
            throw AdminFailure(exitCode: 2, kind: "usage", message: "bad queue name \"\(name)\": \(error.hint)")
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

    /// Any error of ours, with its exit code: JobQ's codes mapped per `docs/configuration.md`.
    static func from(_ error: any Error) -> AdminFailure {
        if let failure = error as? AdminFailure { return failure }
        if let error = error as? RedisError { return AdminFailure(error) }
        guard let error = error as? JobQError else {
            return AdminFailure(exitCode: 1, kind: "failed", message: "\(error)")
        }
        if error.code == .redis, let redis = error.redisError { return AdminFailure(redis) }
        switch error.code {
        case .notFound:
            return AdminFailure(exitCode: 4, kind: "notFound", message: error.description)
        case .invalidQueueName, .invalidJobID, .invalidJobName, .invalidOptions, .invalidSchedule, .tooLarge:
            return AdminFailure(exitCode: 2, kind: "usage", message: error.description)
        default:
            return AdminFailure(exitCode: 1, kind: error.code.description, message: error.description)
        }
    }

    /// Maps a Redis error: unreachable or refused credentials → 3, anything else → 1.
    init(_ error: RedisError) {
        switch error.code {
        case .connectionFailed, .unavailable, .authFailed, .outcomeUnknown, .tlsFailed:
            self.init(exitCode: 3, kind: error.code.description, message: error.description)
        case .invalidURL:
            self.init(exitCode: 2, kind: "usage", message: error.description)
        default:
            self.init(exitCode: 1, kind: error.code.description, message: error.description)
        }
    }
}
