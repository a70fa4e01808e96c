import ArgumentParser
import Foundation
import JobQ
import Logging

/// `jobq-worker`. This first version runs the start-up checks every worker runs (DESIGN §1):
/// Redis reachable, credentials accepted, AOF on and `noeviction`. Exit codes (DESIGN §9):
/// 0 ok, 2 usage, 3 Redis unreachable or auth refused, 78 bad configuration (including a
/// non-durable Redis under `--require-durable`).
@main
struct JobQWorker: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jobq-worker",
        abstract: "Run jobq jobs from Redis (this build: start-up checks only).",
        discussion: """
            Redis: --redis-url, else $JOBQ_REDIS_URL, else redis://127.0.0.1:6379. The password comes from
            --redis-password-file, $JOBQ_REDIS_PASSWORD or $JOBQ_REDIS_URL, never from --redis-url.

            Exit codes: 0 ok, 2 usage, 3 Redis unreachable or auth refused, 78 bad configuration.
            """
    )

    @Option(name: .customLong("redis-url"), help: "redis://[user@]host:port/db or unix:///path (no password here).")
    var redisURL: String?

    @Option(name: .customLong("redis-password-file"), help: "A file holding the Redis password.")
    var passwordFile: String?

    @Flag(name: .customLong("require-durable"), help: "Exit 78 unless Redis has AOF on and maxmemory-policy noeviction.")
    var requireDurable = false

    static func main() async {
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let exit as WorkerExit {
            Foundation.exit(exit.code)
        } catch {
            let code = exitCode(for: error)
            if code == .validationFailure {
                FileHandle.standardError.write(Data("jobq-worker: \(fullMessage(for: error))\n".utf8))
                Foundation.exit(2)
            }
            exit(withError: error)
        }
    }

    func run() async throws {
        LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
        var logger = Logger(label: "jobq.worker")
        logger.logLevel = .info
        let configuration: RedisConfiguration
        do {
            configuration = try RedisConfiguration.commandLine(urlFlag: redisURL, passwordFile: passwordFile)
        } catch {
            logger.error("\(error.description)")
            throw WorkerExit(code: 2)
        }
        logger[metadataKey: "redis"] = "\(configuration.redactedURL)"
        var withDeadline = configuration
        withDeadline.retryDeadline = .seconds(10)
        withDeadline.clientName = "jobq-worker"
        let client = RedisClient(configuration: withDeadline)
        defer { Task { await client.close() } }
        let info: RedisServerInfo
        do {
            info = try await RedisServerInfo.fetch(from: client)
        } catch {
            logger.error("\(error.description)")
            throw WorkerExit(code: error.code == .invalidURL ? 2 : 3)
        }
        logger.info("connected", metadata: ["version": "\(info.version)"])
        let problems = info.durabilityProblems
        for problem in problems {
            logger.error("Redis is not durable: \(problem)")
        }
        if requireDurable && !problems.isEmpty {
            logger.error("refusing to start: --require-durable is set")
            throw WorkerExit(code: 78)
        }
        logger.info("start-up checks passed; this build runs no jobs yet")
    }
}

struct WorkerExit: Error {
    let code: Int32
}
