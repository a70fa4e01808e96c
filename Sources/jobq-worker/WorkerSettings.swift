import Configuration
import Foundation
import JobQ
import SystemPackage

/// Everything `jobq-worker` needs, from (strongest first) flags, `JOBQ_*` environment variables
/// and the YAML file given with `--config` (`docs/configuration.md`). Keys, as in `config/jobq.yaml`:
///
/// | key | env | meaning |
/// |---|---|---|
/// | redis.url | JOBQ_REDIS_URL | `redis://[user@]host:port/db`, `unix:///path`, `redis+cluster://…`, `redis+sentinel://…` |
/// | redis.password | JOBQ_REDIS_PASSWORD | password (prefer a file) |
/// | redis.passwordFile | JOBQ_REDIS_PASSWORD_FILE | file holding the password |
/// | redis.sentinelPassword | JOBQ_REDIS_SENTINEL_PASSWORD | the sentinels' own password (prefer a file) |
/// | redis.sentinelPasswordFile | JOBQ_REDIS_SENTINEL_PASSWORD_FILE | file holding it |
/// | redis.tls.caFile | JOBQ_REDIS_TLS_CA_FILE | `rediss` only: CA to trust (default: system store) |
/// | redis.tls.certFile, redis.tls.keyFile | JOBQ_REDIS_TLS_CERT_FILE, JOBQ_REDIS_TLS_KEY_FILE | client certificate and key |
/// | redis.tls.serverName | JOBQ_REDIS_TLS_SERVER_NAME | name checked against the certificate |
/// | redis.tls.insecureSkipVerify | JOBQ_REDIS_TLS_INSECURE_SKIP_VERIFY | no verification (warned at every start) |
/// | redis.sentinel.tls.enabled | JOBQ_REDIS_SENTINEL_TLS_ENABLED | sentinels only: TLS to the sentinels or not, when it differs from the data nodes |
/// | redis.sentinel.tls.* (caFile, certFile, keyFile, serverName, insecureSkipVerify) | JOBQ_REDIS_SENTINEL_TLS_* | the sentinels' TLS where it differs |
/// | worker.queues | JOBQ_WORKER_QUEUES | `name[:weight]` list |
/// | worker.concurrency | JOBQ_WORKER_CONCURRENCY | jobs at once |
/// | worker.lease | JOBQ_WORKER_LEASE | lease length (`10s`) |
/// | worker.shutdownGrace | JOBQ_WORKER_SHUTDOWN_GRACE | time running jobs get on SIGTERM |
/// | worker.id | JOBQ_WORKER_ID | worker id (default host:pid:random) |
/// | worker.requireDurable | JOBQ_WORKER_REQUIRE_DURABLE | exit 78 unless AOF + noeviction |
/// | worker.httpThrottleOn429 | JOBQ_WORKER_HTTP_THROTTLE_ON429 | `http` handlers: a 429 with `Retry-After` throttles the whole queue (`RateLimited`) |
/// | handlers | JOBQ_HANDLERS | `jobName=kind[:argument]` list |
/// | schedules | (file only) | recurring jobs upserted at start (`ScheduleConfig`, `docs/schedules.md`) |
/// | log.level | JOBQ_LOG_LEVEL | trace, debug, info, notice, warning, error |
/// | metrics.port | JOBQ_METRICS_PORT | `/metrics` and `/health` port (0: any free port; unset: off) |
/// | metrics.address | JOBQ_METRICS_ADDRESS | address to bind (default 127.0.0.1) |
///
/// `JOBQ_JOB_*` variables are never read (they belong to jobs).
struct WorkerSettings {
    var redis: RedisConfiguration
    var worker: WorkerConfiguration
    var handlerSpecs: [(name: String, spec: HandlerSpec)]
    var requireDurable: Bool
    /// `http` handlers answer a 429 with `Retry-After` by throttling the queue.
    var httpThrottleOn429: Bool
    var logLevel: String
    /// The metrics/health port (nil: no endpoint; 0: any free port) and address.
    var metricsPort: Int?
    var metricsAddress: String
    /// The config file's `schedules:`, upserted at start.
    var schedules: [ScheduleEntry] = []

    /// A configuration value that cannot be used: names the key, the value and what is expected.
    struct Problem: Error, CustomStringConvertible {
        let key: String
        let value: String
        let expected: String
        /// One line, whatever the value holds (an operator greps logs by line).
        var description: String {
            "bad configuration: \(key) = \"\(Self.oneLine(value))\": expected \(Self.oneLine(expected))"
        }

        static func oneLine(_ text: String) -> String {
            String(text.unicodeScalars.map { $0.properties.generalCategory == .control ? "␤" : Character($0) }.prefix(300))
        }
    }

    struct Flags {
        var configPath: String?
        var redisURL: String?
        var passwordFile: String?
        var queues: [String] = []
        var concurrency: Int?
        var handlers: [String] = []
        var lease: String?
        var shutdownGrace: String?
        var workerID: String?
        var requireDurable = false
        var httpThrottleOn429 = false
        var logLevel: String?
        var metricsPort: Int?
        var metricsAddress: String?
        var tls = RedisTLSOptions()
    }

    static func load(flags: Flags, environment: [String: String] = ProcessInfo.processInfo.environment) async throws -> WorkerSettings {
        try ConfigSchema.check(environment: environment)
        // JOBQ_X_Y → X_Y for the environment provider; JOBQ_JOB_* are the jobs' own.
        var scoped: [String: String] = [:]
        for (key, value) in environment where key.hasPrefix("JOBQ_") && !key.hasPrefix("JOBQ_JOB_") {
            scoped[String(key.dropFirst(5))] = value
        }
        var providers: [any ConfigProvider] = [
            EnvironmentVariablesProvider(environmentVariables: scoped, secretsSpecifier: .specific(["REDIS_PASSWORD", "REDIS_URL", "REDIS_SENTINEL_PASSWORD"]))
        ]
        if let path = flags.configPath {
            guard FileManager.default.fileExists(atPath: path) else {
                throw Problem(key: "--config", value: path, expected: "a readable YAML file (see config/jobq.yaml)")
            }
            let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
            guard size <= 1 << 20, let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw Problem(key: "--config", value: path, expected: "a readable UTF-8 YAML file of at most 1 MiB")
            }
            // Types, unknown keys and expansion checked first: the provider reads leniently.
            try ConfigSchema.check(yaml: text)
            do {
                // The provider reads scalars and lists of them: `schedules:` (a list of
                // mappings, read by ScheduleConfig) is left out of what it sees.
                if let rest = ScheduleConfig.withoutSchedules(text) {
                    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("jobq-worker-\(UUID().uuidString)")
                    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
                    defer { try? FileManager.default.removeItem(at: dir) }
                    let file = dir.appendingPathComponent("config.yaml")
                    guard FileManager.default.createFile(atPath: file.path, contents: Data(rest.utf8), attributes: [.posixPermissions: 0o600]) else {
                        throw Problem(key: "--config", value: path, expected: "a temporary directory to write the file's keys to (check TMPDIR)")
                    }
                    providers.append(try await FileProvider<YAMLSnapshot>(filePath: FilePath(file.path)))
                } else {
                    providers.append(try await FileProvider<YAMLSnapshot>(filePath: FilePath(path)))
                }
            } catch {
                // The YAML parser's message spans lines (it quotes the offending text): keep the first.
                let first = "\(error)".split(whereSeparator: \.isNewline).first.map(String.init) ?? "\(error)"
                throw Problem(key: "--config", value: path, expected: "valid YAML (\(first.trimmingCharacters(in: CharacterSet(charactersIn: ": "))))")
            }
        }
        let config = ConfigReader(providers: providers)
        var fileText: String?
        if let path = flags.configPath { fileText = try? String(contentsOfFile: path, encoding: .utf8) }

        // Redis: flag URL (never with a password), then env/file; password: file flag, env, file.
        let urlFlagOrConfig = flags.redisURL ?? config.string(forKey: "redis.url", isSecret: true)
        var redis: RedisConfiguration
        do {
            redis = try RedisConfiguration(url: urlFlagOrConfig ?? "redis://127.0.0.1:6379")
        } catch {
            throw Problem(
                key: flags.redisURL != nil ? "--redis-url" : "redis.url", value: "(hidden)",
                expected: "redis://[user@]host:port/db or unix:///path (\(error.detail))")
        }
        if flags.redisURL != nil, redis.password != nil {
            throw Problem(
                key: "--redis-url", value: "(hidden)",
                expected: "a URL without a password (command lines show in ps): use JOBQ_REDIS_PASSWORD or --redis-password-file")
        }
        if let file = flags.passwordFile ?? config.string(forKey: "redis.passwordFile") {
            guard let contents = try? String(contentsOfFile: file, encoding: .utf8) else {
                throw Problem(key: "redis.passwordFile", value: file, expected: "a readable file holding the password")
            }
            let password = contents.trimmingCharacters(in: .newlines)
            guard !password.isEmpty else { throw Problem(key: "redis.passwordFile", value: file, expected: "a file holding a non-empty password") }
            redis.password = password
        } else if let password = config.string(forKey: "redis.password", isSecret: true), !password.isEmpty {
            redis.password = password
        }
        // Sentinels with `requirepass` of their own (the data nodes' password is the one above).
        var sentinelPassword: String?
        if let file = config.string(forKey: "redis.sentinelPasswordFile") {
            guard let contents = try? String(contentsOfFile: file, encoding: .utf8) else {
                throw Problem(key: "redis.sentinelPasswordFile", value: file, expected: "a readable file holding the sentinels' password")
            }
            sentinelPassword = contents.trimmingCharacters(in: .newlines)
            guard sentinelPassword?.isEmpty == false else {
                throw Problem(key: "redis.sentinelPasswordFile", value: file, expected: "a file holding a non-empty password")
            }
        } else if let password = config.string(forKey: "redis.sentinelPassword", isSecret: true), !password.isEmpty {
            sentinelPassword = password
        }
        if let sentinelPassword {
            guard redis.sentinel != nil else {
                throw Problem(key: "redis.sentinelPassword", value: "(hidden)", expected: "only with a redis+sentinel:// URL")
            }
            redis.sentinel?.password = sentinelPassword
        }
        // TLS (rediss URLs): flags, then env/file. Files are loaded here, so a missing or
        // mismatched file stops the worker with 78 before it ever connects.
        var tls = flags.tls
        tls.caFile = tls.caFile ?? config.string(forKey: "redis.tls.caFile")
        tls.certFile = tls.certFile ?? config.string(forKey: "redis.tls.certFile")
        tls.keyFile = tls.keyFile ?? config.string(forKey: "redis.tls.keyFile")
        tls.serverName = tls.serverName ?? config.string(forKey: "redis.tls.serverName")
        if tls.insecureSkipVerify == nil, let text = config.string(forKey: "redis.tls.insecureSkipVerify") {
            switch text.lowercased() {
            case "true", "yes", "1": tls.insecureSkipVerify = true
            case "false", "no", "0": tls.insecureSkipVerify = false
            default: throw Problem(key: "redis.tls.insecureSkipVerify", value: text, expected: "true or false")
            }
        }
        do throws(RedisError) {
            try redis.applyTLS(tls)
            try await redis.tls?.checkFiles()
        } catch {
            throw Problem(key: "redis.tls", value: redis.tls.map(\.description) ?? "", expected: error.detail)
        }
        var sentinelTLS = RedisTLSOptions()
        sentinelTLS.caFile = config.string(forKey: "redis.sentinel.tls.caFile")
        sentinelTLS.certFile = config.string(forKey: "redis.sentinel.tls.certFile")
        sentinelTLS.keyFile = config.string(forKey: "redis.sentinel.tls.keyFile")
        sentinelTLS.serverName = config.string(forKey: "redis.sentinel.tls.serverName")
        sentinelTLS.insecureSkipVerify = try Self.boolean(config, "redis.sentinel.tls.insecureSkipVerify")
        let sentinelTLSEnabled = try Self.boolean(config, "redis.sentinel.tls.enabled")
        do throws(RedisError) {
            try redis.applySentinelTLS(sentinelTLS, enabled: sentinelTLSEnabled)
            if sentinelTLS != RedisTLSOptions() { try await redis.sentinel?.tls?.checkFiles() }
        } catch {
            throw Problem(key: "redis.sentinel.tls", value: redis.sentinel?.tls.map(\.description) ?? "", expected: error.detail)
        }
        redis.clientName = "jobq-worker"

        // Queues and slots.
        let queueTexts = flags.queues.isEmpty ? (config.stringArray(forKey: "worker.queues") ?? []) : flags.queues
        guard !queueTexts.isEmpty else {
            throw Problem(key: "worker.queues", value: "", expected: "at least one queue (--queue NAME[:WEIGHT] or worker.queues in the config file)")
        }
        var shares: [WorkerConfiguration.QueueShare] = []
        for text in queueTexts {
            guard let share = WorkerConfiguration.QueueShare(parsing: text) else {
                throw Problem(key: "worker.queues", value: text, expected: "NAME or NAME:WEIGHT")
            }
            do {
                try QueueKeys.validate(queue: share.name)
            } catch {
                throw Problem(key: "worker.queues", value: text, expected: "a queue name of 1–100 bytes without {, } or control characters")
            }
            shares.append(share)
        }
        var concurrency = 8
        if let c = flags.concurrency {
            concurrency = c
        } else if let text = config.string(forKey: "worker.concurrency"), !text.isEmpty {
            guard let c = Int(text) else { throw Problem(key: "worker.concurrency", value: text, expected: "an integer 1…10000") }
            concurrency = c
        }
        var worker = WorkerConfiguration(queues: shares, concurrency: concurrency)
        if let id = flags.workerID ?? config.string(forKey: "worker.id") { worker.workerID = id }
        worker.lease = try duration(flags.lease, config, "worker.lease", default: worker.lease)
        worker.shutdownGrace = try duration(flags.shutdownGrace, config, "worker.shutdownGrace", default: worker.shutdownGrace)
        do {
            try worker.validate()
        } catch {
            throw Problem(key: "worker", value: "", expected: error.detail)
        }

        var requireDurable = flags.requireDurable
        if !requireDurable, let text = config.string(forKey: "worker.requireDurable") {
            switch text.lowercased() {
            case "true", "yes", "1": requireDurable = true
            case "false", "no", "0": requireDurable = false
            default: throw Problem(key: "worker.requireDurable", value: text, expected: "true or false")
            }
        }

        // Handlers: `jobName=kind[:argument]`.
        let handlerTexts = flags.handlers.isEmpty ? (config.stringArray(forKey: "handlers") ?? []) : flags.handlers
        var specs: [(String, HandlerSpec)] = []
        for text in handlerTexts {
            guard let eq = text.firstIndex(of: "="), eq != text.startIndex else {
                throw Problem(key: "handlers", value: text, expected: "jobName=kind[:argument], kinds: \(HandlerSpec.kinds)")
            }
            let name = String(text[..<eq])
            do {
                try JobQueue.validate(jobName: name, queue: "-")
            } catch {
                throw Problem(key: "handlers", value: text, expected: "a job name of 1–200 bytes without control characters")
            }
            let specText = String(text[text.index(after: eq)...])
            if let why = HandlerSpec.problem(specText) {
                throw Problem(key: "handlers", value: text, expected: why)
            }
            guard let spec = HandlerSpec(parsing: specText) else {
                throw Problem(key: "handlers", value: text, expected: "jobName=kind[:argument], kinds: \(HandlerSpec.kinds)")
            }
            guard !specs.contains(where: { $0.0 == name }) else {
                throw Problem(key: "handlers", value: text, expected: "one handler per job name (\"\(name)\" has two)")
            }
            specs.append((name, spec))
        }
        guard !specs.isEmpty else {
            throw Problem(key: "handlers", value: "", expected: "at least one handler (--handler jobName=kind or handlers in the config file)")
        }

        let level = flags.logLevel ?? config.string(forKey: "log.level") ?? "info"
        guard ["trace", "debug", "info", "notice", "warning", "error", "critical"].contains(level) else {
            throw Problem(key: "log.level", value: level, expected: "trace, debug, info, notice, warning, error or critical")
        }
        var metricsPort: Int? = flags.metricsPort
        if metricsPort == nil, let text = config.string(forKey: "metrics.port"), !text.isEmpty {
            guard let p = Int(text) else { throw Problem(key: "metrics.port", value: text, expected: "a port number 0…65535 (0: any free port)") }
            metricsPort = p
        }
        if let p = metricsPort, !(0...65535).contains(p) {
            throw Problem(key: "metrics.port", value: String(p), expected: "a port number 0…65535 (0: any free port)")
        }
        let metricsAddress = flags.metricsAddress ?? config.string(forKey: "metrics.address") ?? "127.0.0.1"
        let httpThrottleOn429 = flags.httpThrottleOn429 ? true : (try boolean(config, "worker.httpThrottleOn429") ?? false)
        let schedules = try fileText.map { (text) throws(Problem) in try ScheduleConfig.parse(yaml: text, queues: worker.queues.map(\.name)) } ?? []
        return WorkerSettings(
            redis: redis, worker: worker, handlerSpecs: specs, requireDurable: requireDurable, httpThrottleOn429: httpThrottleOn429, logLevel: level,
            metricsPort: metricsPort, metricsAddress: metricsAddress, schedules: schedules)
    }

    /// A true/false key (`true`, `yes`, `1` / `false`, `no`, `0`); nil when not set.
    private static func boolean(_ config: ConfigReader, _ key: String) throws -> Bool? {
        guard let text = config.string(forKey: ConfigKey(key)) else { return nil }
        switch text.lowercased() {
        case "true", "yes", "1": return true
        case "false", "no", "0": return false
        default: throw Problem(key: key, value: text, expected: "true or false")
        }
    }

    private static func duration(_ flag: String?, _ config: ConfigReader, _ key: String, default value: Duration) throws -> Duration {
        guard let text = flag ?? config.string(forKey: ConfigKey(key)) else { return value }
        guard let d = Duration(parsing: text) else { throw Problem(key: key, value: text, expected: "a duration such as 500ms, 10s, 2m") }
        return d
    }
}
