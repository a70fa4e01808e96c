import Foundation

extension RedisConfiguration {
    /// Where a command-line program's Redis settings come from (`docs/configuration.md`), strongest first:
    /// - URL: the `--redis-url` flag, then `JOBQ_REDIS_URL`, then `redis://127.0.0.1:6379`;
    /// - password: `--redis-password-file`, then `JOBQ_REDIS_PASSWORD`, then a password inside
    ///   `JOBQ_REDIS_URL`;
    /// - the sentinels' own password (`redis+sentinel://` only): `JOBQ_REDIS_SENTINEL_PASSWORD`.
    ///
    /// - Throws: ``RedisError/Code-swift.struct/invalidURL`` when the `--redis-url` flag carries a
    ///   password (it would show in `ps`), or the password file cannot be read.
    public static func commandLine(urlFlag: String?, passwordFile: String?, environment: [String: String]? = nil) throws(RedisError) -> RedisConfiguration {
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
        return configuration
    }
}
