public import ArgumentParser
public import JobQ

/// The `--redis-tls-*` flags both binaries take (`rediss` URLs only; each falls back to its
/// `JOBQ_REDIS_TLS_*` variable, and in `jobq-worker` to `redis.tls.*`).
public struct RedisTLSFlags: ParsableArguments {
    @Option(name: .customLong("redis-tls-ca-file"), help: "rediss:// only: PEM file of the CA to trust (default: the system trust store).")
    public var caFile: String?

    @Option(name: .customLong("redis-tls-cert-file"), help: "rediss:// only: PEM client certificate, for servers with tls-auth-clients.")
    public var certFile: String?

    @Option(name: .customLong("redis-tls-key-file"), help: "rediss:// only: PEM private key of the client certificate.")
    public var keyFile: String?

    @Option(name: .customLong("redis-tls-server-name"), help: "rediss:// only: the name to check the server's certificate against.")
    public var serverName: String?

    public init() {}

    /// The flags' names that take a value (for programs that move shared flags around).
    public static let valued = ["--redis-tls-ca-file", "--redis-tls-cert-file", "--redis-tls-key-file", "--redis-tls-server-name"]

    /// What was given, as library options.
    public var options: RedisTLSOptions {
        RedisTLSOptions(caFile: caFile, certFile: certFile, keyFile: keyFile, serverName: serverName)
    }
}
