import Foundation

extension RedisConfiguration {
    /// Where a command-line program's Redis settings come from (`docs/configuration.md`), strongest first:
    /// - URL: the `--redis-url` flag, then `JOBQ_REDIS_URL`, then `redis://127.0.0.1:6379`;
    /// - password: `--redis-password-file`, then `JOBQ_REDIS_PASSWORD`, then a password inside
    ///   `JOBQ_REDIS_URL`;
    /// - the sentinels' own password (`redis+sentinel://` only): `JOBQ_REDIS_SENTINEL_PASSWORD`;
    /// - TLS (`rediss` URLs only): `tls` (the `--redis-tls-*` flags), then `JOBQ_REDIS_TLS_*`;
    /// - the sentinels' TLS where it differs from the data nodes' (`redis[s]+sentinel://` only):
    ///   `JOBQ_REDIS_SENTINEL_TLS_ENABLED` and `JOBQ_REDIS_SENTINEL_TLS_*`.
    ///
    /// - Throws: ``RedisError/Code-swift.struct/invalidURL`` when the `--redis-url` flag carries a
    ///   password (it would show in `ps`), or the password file cannot be read.
    public static func commandLine(
        urlFlag: String?, passwordFile: String?, tls: RedisTLSOptions = RedisTLSOptions(), environment: [String: String]? = nil
    ) throws(RedisError) -> RedisConfiguration {
        let environment = environment ?? ProcessInfo.processInfo.environment
        var configuration: RedisConfiguration
        if let urlFlag {
            configuration = try RedisConfiguration(url: urlFlag)
            if configuration.password != nil {
                throw RedisError(
                    .invalidURL, endpoint: nil,
                    detail: "--redis-url must not contain a password: command lines are visible in ps; use JOBQ_REDIS_PASSWORD or --redis-password-file")
            }
        } else if let fromEnvironment = environment["JOBQ_REDIS_URL"], !fromEnvironment.isEmpty {
            configuration = try RedisConfiguration(url: fromEnvironment)
        } else {
            configuration = RedisConfiguration(endpoint: .tcp(host: "127.0.0.1", port: 6379))
        }
        if let passwordFile {
            let contents: String
            do {
                contents = try String(contentsOfFile: passwordFile, encoding: .utf8)
            } catch {
                throw RedisError(.invalidURL, endpoint: nil, detail: "cannot read the password file \(passwordFile): \(error.localizedDescription)")
            }
            let password = contents.trimmingCharacters(in: .newlines)
            if password.isEmpty {
                throw RedisError(.invalidURL, endpoint: nil, detail: "the password file \(passwordFile) is empty")
            }
            configuration.password = password
        } else if let password = environment["JOBQ_REDIS_PASSWORD"], !password.isEmpty {
            configuration.password = password
        }
        if let password = environment["JOBQ_REDIS_SENTINEL_PASSWORD"], !password.isEmpty, configuration.sentinel != nil {
            configuration.sentinel?.password = password
        }
        try configuration.applyTLS(try tls.fillingIn(from: environment))
        let sentinelTLS = try RedisTLSOptions().fillingIn(from: environment, prefix: "JOBQ_REDIS_SENTINEL_TLS_")
        let enabled = try RedisTLSOptions.boolean(environment, "JOBQ_REDIS_SENTINEL_TLS_ENABLED")
        try configuration.applySentinelTLS(sentinelTLS, enabled: enabled)
        return configuration
    }
}

/// TLS settings as the executables take them (flags, `JOBQ_REDIS_TLS_*`, `redis.tls.*`): each nil
/// when not given. Applied to a configuration with ``RedisConfiguration/applyTLS(_:)``.
public struct RedisTLSOptions: Sendable, Hashable {
    public var caFile: String?
    public var certFile: String?
    public var keyFile: String?
    public var serverName: String?
    public var insecureSkipVerify: Bool?

    public init(caFile: String? = nil, certFile: String? = nil, keyFile: String? = nil, serverName: String? = nil, insecureSkipVerify: Bool? = nil) {
        self.caFile = caFile
        self.certFile = certFile
        self.keyFile = keyFile
        self.serverName = serverName
        self.insecureSkipVerify = insecureSkipVerify
    }

    public var isEmpty: Bool { self == RedisTLSOptions() }

    /// Each option not given here, taken from `JOBQ_REDIS_TLS_*` (what `jobq-admin` reads), or
    /// the variables under another `prefix` (`JOBQ_REDIS_SENTINEL_TLS_`).
    public func fillingIn(from environment: [String: String], prefix: String = "JOBQ_REDIS_TLS_") throws(RedisError) -> RedisTLSOptions {
        func value(_ name: String) -> String? { environment[prefix + name].flatMap { $0.isEmpty ? nil : $0 } }
        var copy = self
        copy.caFile = caFile ?? value("CA_FILE")
        copy.certFile = certFile ?? value("CERT_FILE")
        copy.keyFile = keyFile ?? value("KEY_FILE")
        copy.serverName = serverName ?? value("SERVER_NAME")
        if insecureSkipVerify == nil { copy.insecureSkipVerify = try Self.boolean(environment, prefix + "INSECURE_SKIP_VERIFY") }
        return copy
    }

    /// A true/false variable (`true`, `yes`, `1` / `false`, `no`, `0`); nil when unset or empty.
    public static func boolean(_ environment: [String: String], _ name: String) throws(RedisError) -> Bool? {
        guard let text = environment[name], !text.isEmpty else { return nil }
        switch text.lowercased() {
        case "true", "yes", "1": return true
        case "false", "no", "0": return false
        default: throw RedisError(.invalidURL, endpoint: nil, detail: "\(name) = \"\(text)\": expected true or false")
        }
    }
}

extension RedisConfiguration {
    /// Puts the options into ``tls`` (and the sentinels' TLS, which shares the CA and client
    /// certificate; the server name is the data nodes' only).
    /// - Throws: `invalidURL` when options are given for a plain `redis://` URL, which would
    ///   otherwise be ignored without a word (use `rediss://`), or a certificate without its key.
    public mutating func applyTLS(_ options: RedisTLSOptions) throws(RedisError) {
        guard !options.isEmpty else { return }
        guard var settings = tls else {
            throw RedisError(
                .invalidURL, endpoint: nil,
                detail: "TLS settings (redis.tls.*) were given but the URL is \(redactedURL.prefix(while: { $0 != ":" }))://, which is plain TCP: use rediss://"
            )
        }
        if let v = options.caFile { settings.caFile = v }
        if let v = options.certFile { settings.certFile = v }
        if let v = options.keyFile { settings.keyFile = v }
        if (settings.certFile == nil) != (settings.keyFile == nil) {
            throw RedisError(.invalidURL, endpoint: nil, detail: "a client certificate needs both redis.tls.certFile and redis.tls.keyFile")
        }
        if let v = options.insecureSkipVerify { settings.insecureSkipVerify = v }
        var sentinelSettings = settings
        if let v = options.serverName { settings.serverName = v }
        tls = settings
        if sentinel != nil {
            sentinelSettings.serverName = sentinel?.tls?.serverName
            sentinel?.tls = sentinelSettings
        }
    }

    /// The sentinels' TLS where it differs from the data nodes' (``applyTLS(_:)`` gives them the
    /// same CA and client certificate): `enabled` false talks plain TCP to the sentinels of a
    /// `rediss+sentinel://` URL; true, or any option, TLS to the sentinels of a
    /// `redis+sentinel://` one; the options replace what the sentinels had.
    /// - Throws: `invalidURL` for sentinel settings without a `redis[s]+sentinel://` URL, options
    ///   together with `enabled` false, or a certificate without its key.
    public mutating func applySentinelTLS(_ options: RedisTLSOptions, enabled: Bool?) throws(RedisError) {
        guard !options.isEmpty || enabled != nil else { return }
        guard sentinel != nil else {
            throw RedisError(
                .invalidURL, endpoint: nil, detail: "the sentinels' TLS settings (redis.sentinel.tls.*) were given but the URL is not redis[s]+sentinel://")
        }
        if enabled == false {
            guard options.isEmpty else {
                throw RedisError(.invalidURL, endpoint: nil, detail: "redis.sentinel.tls.enabled is false, yet other redis.sentinel.tls.* settings were given")
            }
            sentinel?.tls = nil
            return
        }
        var settings = sentinel?.tls ?? RedisTLS()
        if let v = options.caFile { settings.caFile = v }
        if let v = options.certFile { settings.certFile = v }
        if let v = options.keyFile { settings.keyFile = v }
        if (settings.certFile == nil) != (settings.keyFile == nil) {
            throw RedisError(
                .invalidURL, endpoint: nil,
                detail: "a client certificate for the sentinels needs both redis.sentinel.tls.certFile and redis.sentinel.tls.keyFile")
        }
        if let v = options.serverName { settings.serverName = v }
        if let v = options.insecureSkipVerify { settings.insecureSkipVerify = v }
        sentinel?.tls = settings
    }
}
