import ArgumentParser
import AsyncHTTPClient
import Foundation
import JobQ
import JobQCommandLine
import JobQWorkerKit
import Logging
import ServiceLifecycle
import UnixSignals

/// `jobq-worker`: runs jobs from Redis with the handlers configured by job name. Deployed side by
/// side on many machines against one Redis; SIGTERM/SIGINT stop it gracefully (running jobs get
/// the shutdown grace, then go back to waiting with no attempt used); a second signal exits at
/// once (leases bring its jobs back). Exit codes (`docs/configuration.md`): 0 graceful stop, 1 forced stop
/// (second signal), 2 usage, 3 Redis unreachable at start, 78 bad configuration (a Redis user
/// without a command the worker needs included).
@main
struct JobQWorker: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jobq-worker",
        abstract: "Run jobq jobs from Redis.",
        discussion: """
            Configuration: --config FILE (YAML, see config/jobq.yaml), overridden by JOBQ_* environment
            variables, overridden by flags. Redis: --redis-url, else $JOBQ_REDIS_URL, else redis.url, else
            redis://127.0.0.1:6379; the password from --redis-password-file, $JOBQ_REDIS_PASSWORD, the config
            file or $JOBQ_REDIS_URL — never from --redis-url.

            Handlers (--handler jobName=kind[:argument], repeatable): \(HandlerSpec.kinds).

            Exit codes: 0 graceful stop, 1 forced stop (second signal), 2 usage, 3 Redis unreachable at start,
            78 bad configuration (the message names the key, the value and what is expected).
            """,
        version: "jobq-worker " + JobQVersion.current
    )

    @Option(name: .customLong("config"), help: "YAML configuration file.")
    var configPath: String?

    @Option(name: .customLong("redis-url"), help: "redis://[user@]host:port/db or unix:///path (no password here).")
    var redisURL: String?

    @Option(name: .customLong("redis-password-file"), help: "A file holding the Redis password.")
    var passwordFile: String?

    @Option(
        name: .customLong("queue"),
        help:
            "A queue to serve, NAME or NAME:WEIGHT (repeatable; the part after the last colon is the weight when it is a number, so queue a:5 is --queue a:5:1)."
    )
    var queues: [String] = []

    @Option(name: .customLong("concurrency"), help: "Jobs run at once by this process (default 8).")
    var concurrency: Int?

    @Option(name: .customLong("handler"), help: "jobName=kind[:argument] (repeatable).")
    var handlers: [String] = []

    @Option(name: .customLong("lease"), help: "Lease length, e.g. 10s (default).")
    var lease: String?

    @Option(name: .customLong("shutdown-grace"), help: "Time running jobs get on SIGTERM, e.g. 30s (default).")
    var shutdownGrace: String?

    @Option(name: .customLong("worker-id"), help: "This worker's id (default host:pid:random).")
    var workerID: String?

    @Option(name: .customLong("log-level"), help: "trace, debug, info (default), notice, warning, error.")
    var logLevel: String?

    @Option(name: .customLong("metrics-port"), help: "Serve /metrics, /health and /health/ready on this port (0: any free port).")
    var metricsPort: Int?

    @Option(name: .customLong("metrics-address"), help: "Address for the metrics port (default 127.0.0.1).")
    var metricsAddress: String?

    @OptionGroup var tls: RedisTLSFlags

    @Flag(name: .customLong("require-durable"), help: "Exit 78 unless Redis has AOF on and maxmemory-policy noeviction.")
    var requireDurable = false

    @Flag(
        name: .customLong("http-throttle-on-429"),
        help: "http handlers: a 429 with Retry-After throttles the whole queue for that long (RateLimited) instead of retrying the one job.")
    var httpThrottleOn429 = false

    @Flag(
        name: .customLong("prune-schedules"),
        help: "Delete the schedules of this worker's queues that the config file's schedules: does not list (else they are kept, with a warning).")
    var pruneSchedules = false

    @Flag(
        name: .customLong("check-config"),
        help: "Load and check the configuration (file, environment, flags), print it with secrets hidden, and exit: 0 valid, 78 not.")
    var checkConfig = false

    static func main() async {
        await guardedMain { error in
            if let exit = error as? WorkerExit { Foundation.exit(exit.code) }
            if exitCode(for: error) == .validationFailure {
                StandardStreams.err("jobq-worker: \(fullMessage(for: error))\n")
                Foundation.exit(2)
            }
            exit(withError: error)
        }
    }

    func run() async throws {
        let settings: WorkerSettings
        do {
            settings = try await WorkerSettings.load(
                flags: .init(
                    configPath: configPath, redisURL: redisURL, passwordFile: passwordFile, queues: queues, concurrency: concurrency,
                    handlers: handlers, lease: lease, shutdownGrace: shutdownGrace, workerID: workerID, requireDurable: requireDurable,
                    httpThrottleOn429: httpThrottleOn429, logLevel: logLevel, metricsPort: metricsPort, metricsAddress: metricsAddress,
                    tls: tls.options))
        } catch {
            StandardStreams.err("jobq-worker: \(error)\n")
            throw WorkerExit(code: 78)
        }
        // A client certificate close to its end is the outage of two weeks from now.
        var certificateWarning: String?
        if let tls = settings.redis.tls, let certificate = try? await tls.clientCertificate() {
            let left = certificate.notAfter.timeIntervalSinceNow
            if left <= 0 {
                certificateWarning = "the client certificate \(tls.certFile ?? "") (\(certificate.subject)) expired at \(certificate.notAfter)"
            } else if left < 14 * 86_400 {
                certificateWarning =
                    "the client certificate \(tls.certFile ?? "") (\(certificate.subject)) expires in \(Int(left / 86_400)) days, at \(certificate.notAfter): renew it"
            }
        }
        let tlsLine = settings.redis.tls.map { "\n  tls          \($0.description)" } ?? ""
        if checkConfig {
            if let certificateWarning { StandardStreams.err("jobq-worker: warning: \(certificateWarning)\n") }
            if settings.redis.tls?.insecureSkipVerify == true {
                StandardStreams.err("jobq-worker: warning: redis.tls.insecureSkipVerify is on: the server's certificate is not checked\n")
            }
            StandardStreams.out(
                """
                configuration valid
                  redis        \(settings.redis.redactedURL)\(settings.redis.password != nil ? " (password set)" : "")\(tlsLine)
                  queues       \(settings.worker.queues.map { "\($0.name):\($0.weight)" }.joined(separator: ", "))
                  concurrency  \(settings.worker.concurrency)
                  lease        \(settings.worker.lease), shutdown grace \(settings.worker.shutdownGrace)
                  handlers     \(settings.handlerSpecs.map { "\($0.name)=\($0.spec)" }.joined(separator: ", "))
                  schedules    \(settings.schedules.isEmpty ? "none" : settings.schedules.map { "\($0.queue)/\($0.id) (\($0.spec))" }.joined(separator: ", "))

                """)
            return
        }
        let level = Logger.Level(rawValue: settings.logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        var logger = Logger(label: "jobq.worker")
        logger[metadataKey: "redis"] = "\(settings.redis.redactedURL)"
        if settings.redis.tls?.insecureSkipVerify == true {
            logger.warning("redis.tls.insecureSkipVerify is on: the server's certificate is not checked, so anyone in the path can pose as Redis")
        }
        if let certificateWarning { logger.warning("\(certificateWarning)") }

        // Start-up checks (`docs/guarantees.md`): reachable, credentials accepted, durable.
        var checkConfiguration = settings.redis
        checkConfiguration.retryDeadline = .seconds(10)
        let probe = RedisClient(configuration: checkConfiguration)
        let info: RedisServerInfo
        do {
            info = try await RedisServerInfo.fetch(from: probe)
        } catch {
            await probe.close()
            if error.detail.contains("NOPERM") {
                // Reachable and authenticated, but the user lacks a command: a configuration error.
                logger.error("the Redis user may not run INFO, which the start-up durability check needs: grant +info (config/users.acl's jobq-worker has it)")
                throw WorkerExit(code: 78)
            }
            logger.error("\(error.description)")
            throw WorkerExit(code: 3)
        }
        await probe.close()
        logger.info("connected", metadata: ["version": "\(info.version)"])
        let problems = info.durabilityProblems
        for problem in problems { logger.error("Redis is not durable: \(problem)") }
        if settings.requireDurable && !problems.isEmpty {
            logger.error("refusing to start: worker.requireDurable is set")
            throw WorkerExit(code: 78)
        }

        let metricsRegistry = settings.metricsPort != nil ? MetricsEndpoint.bootstrap() : nil
        // The HTTP client (and its event loops) only when an `http` handler needs it.
        let needsHTTP = settings.handlerSpecs.contains { if case .http = $0.spec { return true } else { return false } }
        let httpClient: HTTPClient? = needsHTTP ? HTTPClient(eventLoopGroupProvider: .singleton) : nil
        var registry = JobHandlers()
        for (name, spec) in settings.handlerSpecs {
            registry.register(name: name, spec.handler(httpClient: httpClient, throttleOn429: settings.httpThrottleOn429))
        }
        if settings.handlerSpecs.contains(where: { if case .exec = $0.spec { return true } else { return false } }) {
            registry.stopsExecPrograms()
        }
        let client = RedisClient(configuration: settings.redis)
        let worker: Worker
        do {
            worker = try Worker(client: client, configuration: settings.worker, handlers: registry, logger: logger)
        } catch {
            logger.error("\(error.description)")
            throw WorkerExit(code: 78)
        }

        do {
            try await Self.upsertSchedules(settings, client: client, prune: pruneSchedules, logger: logger)
        } catch {
            logger.error("cannot store the configured schedules: \(error)")
            await client.close()
            throw WorkerExit(code: error.code == .redis ? 3 : 78)
        }

        // A second SIGTERM/SIGINT exits at once; the first is the ServiceGroup's graceful stop.
        let forced = Task {
            var seen = 0
            for await signal in await UnixSignalsSequence(trapping: .sigterm, .sigint) {
                seen += 1
                if seen >= 2 {
                    StandardStreams.err("jobq-worker: second \(signal): exiting now; leases will bring running jobs back\n")
                    Foundation.exit(1)
                }
            }
        }
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [.init(service: worker)]
        if let port = settings.metricsPort, let metricsRegistry {
            let address = settings.metricsAddress
            let endpointLogger = logger
            let server = MetricsEndpoint.server(
                host: address, port: port, registry: metricsRegistry,
                ready: { [client] in worker.isRunning && client.connectionProblem == nil },
                onBound: { endpointLogger.info("metrics and health on http://\(address):\($0)/metrics") },
                logger: logger)
            services.append(.init(service: server))
        }
        let group = ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await group.run()
        } catch {
            logger.error("worker stopped with an error: \(error)")
        }
        forced.cancel()
        try? await httpClient?.shutdown()
        await client.close()
    }
}

extension JobQWorker {
    /// The config file's schedules, upserted (the same spec again writes nothing, so every
    /// worker of a fleet may do it at each start). Schedules of this worker's queues that the file
    /// does not list are logged, or deleted with `--prune-schedules`.
    static func upsertSchedules(_ settings: WorkerSettings, client: RedisClient, prune: Bool, logger: Logger) async throws(JobQError) {
        let handled = Set(settings.handlerSpecs.map(\.name))
        for entry in settings.schedules {
            let queue = try JobQueue(name: entry.queue, client: client)
            let result = try await queue.upsertSchedule(id: entry.id, entry.spec, job: entry.job, options: entry.options)
            logger.info(
                "schedule \(result.change.rawValue)",
                metadata: [
                    "queue": "\(entry.queue)", "schedule": "\(entry.id)", "spec": "\(entry.spec)",
                    "next": "\(result.nextTick.map { "\($0)" } ?? "none")",
                ])
            if !handled.contains(entry.job.name) {
                logger.warning(
                    "no handler here for the schedule's job: another worker must run it",
                    metadata: ["queue": "\(entry.queue)", "schedule": "\(entry.id)", "job": "\(entry.job.name)"])
            }
        }
        guard !settings.schedules.isEmpty || prune else { return }
        for share in settings.worker.queues {
            let queue = try JobQueue(name: share.name, client: client)
            let listed = Set(settings.schedules.filter { $0.queue == share.name }.map(\.id))
            for schedule in try await queue.schedules() where !listed.contains(schedule.id) {
                if prune {
                    try await queue.removeSchedule(id: schedule.id)
                    logger.notice(
                        "schedule removed: not in the config file (--prune-schedules)", metadata: ["queue": "\(share.name)", "schedule": "\(schedule.id)"])
                } else {
                    logger.warning(
                        "a schedule of this queue is not in the config file: kept (--prune-schedules deletes it, or jobq-admin schedule remove)",
                        metadata: ["queue": "\(share.name)", "schedule": "\(schedule.id)"])
                }
            }
        }
    }
}

struct WorkerExit: Error {
    let code: Int32
}
