import Foundation
public import JobQ
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A private `redis-server` process: its own temp dir, a unix socket or a free loopback TCP port,
/// no persistence unless asked. Stopped by PID (``stop()``), also at process exit.
///
/// Used by the tests, the demo and the benchmark. It never touches a server it did not start.
public final class RedisServerProcess: Sendable {
    public enum Transport: Sendable {
        /// A unix socket in the server's temp dir (the default for tests: no port to collide on).
        case unix
        /// A free port on 127.0.0.1.
        case tcp
    }

    public struct Options: Sendable {
        public var transport: Transport = .unix
        /// Append-only file with this fsync policy (`always`, `everysec`), or nil for none.
        public var appendFsync: String?
        /// `requirepass` for the default user.
        public var password: String?
        /// Extra `--name value` arguments.
        public var extraArguments: [String] = []
        /// Run as a Redis Sentinel watching this primary (`redis-server sentinel.conf --sentinel`).
        public var sentinel: SentinelMonitor?
        /// Serve TLS only (`--port 0 --tls-port …`); the transport is then TCP on loopback.
        public var tls: ServerTLS?

        public init(transport: Transport = .unix, appendFsync: String? = nil, password: String? = nil, extraArguments: [String] = []) {
            self.transport = transport
            self.appendFsync = appendFsync
            self.password = password
            self.extraArguments = extraArguments
        }
    }

    /// A TLS server's certificate and whether it asks clients for theirs.
    public struct ServerTLS: Sendable {
        public var certificates: TestCertificates
        /// The certificate the server presents (the key is always the server key); default
        /// the valid one for localhost and 127.0.0.1.
        public var certFile: String
        /// `tls-auth-clients yes`: a client without a certificate of the CA is refused.
        public var authClients: Bool
        /// The name the certificate is for, when it is not for `localhost` and `127.0.0.1`
        /// (``configuration`` then verifies that name).
        public var serverName: String?
        /// Serve plain TCP and use TLS only for the server's own links (a sentinel watching TLS
        /// data nodes, `tls-replication yes`).
        public var linksOnly: Bool

        public init(
            certificates: TestCertificates, certFile: String? = nil, authClients: Bool = false, serverName: String? = nil, linksOnly: Bool = false
        ) {
            self.certificates = certificates
            self.certFile = certFile ?? certificates.serverCertFile
            self.authClients = authClients
            self.serverName = serverName
            self.linksOnly = linksOnly
        }
    }

    /// What a sentinel watches, and how quickly it gives up on the primary.
    public struct SentinelMonitor: Sendable {
        public var masterName: String
        public var primary: RedisEndpoint
        public var quorum: Int
        public var downAfter: Duration
        public var failoverTimeout: Duration
        /// With ``Options/password`` set on sentinels: the password they use with each other.
        public var sentinelPassword: String?

        public init(
            masterName: String, primary: RedisEndpoint, quorum: Int, downAfter: Duration = .seconds(1), failoverTimeout: Duration = .seconds(5),
            sentinelPassword: String? = nil
        ) {
            self.masterName = masterName
            self.primary = primary
            self.quorum = quorum
            self.downAfter = downAfter
            self.failoverTimeout = failoverTimeout
            self.sentinelPassword = sentinelPassword
        }
    }

    public struct StartError: Error, CustomStringConvertible {
        public let description: String
    }

    public let options: Options
    /// The server's temp dir (socket, pidfile, log, AOF).
    public let directory: String
    public let endpoint: RedisEndpoint
    private let running = Mutex<Running?>(nil)

    private struct Running: Sendable {
        let child: ChildProcess
        var pid: Int32 { child.pid }
    }

    /// Starts a server and waits (up to 20 s) until it answers `PING`.
    public static func start(_ options: Options = Options()) async throws -> RedisServerProcess {
        let root = ProcessInfo.processInfo.environment["JOBQ_TEST_TMPDIR"] ?? NSTemporaryDirectory()
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        var template = Array((root.hasSuffix("/") ? root : root + "/").utf8CString.dropLast()) + Array("jobq-redis-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw StartError(description: "cannot create a temp dir under \(root)") }
        let directory = String(cString: made)

        var lastError: (any Error)?
        for _ in 0..<5 {
            let endpoint: RedisEndpoint
            switch options.tls == nil ? options.transport : .tcp {
            case .unix: endpoint = .unix(path: directory + "/redis.sock")
            case .tcp: endpoint = .tcp(host: "127.0.0.1", port: try freeLoopbackPort())
            }
            let server = RedisServerProcess(options: options, directory: directory, endpoint: endpoint)
            do {
                try await server.launch()
                return server
            } catch {
                lastError = error
                // A TCP port taken between our probe and the server's bind: try another one.
                if options.transport == .unix && options.tls == nil { break }
            }
        }
        throw lastError ?? StartError(description: "redis-server did not start")
    }

    private init(options: Options, directory: String, endpoint: RedisEndpoint) {
        self.options = options
        self.directory = directory
        self.endpoint = endpoint
    }

    /// Settings for a client of this server (with its password, if any).
    public var configuration: RedisConfiguration {
        var c = RedisConfiguration(endpoint: endpoint, password: options.password)
        c.retryDeadline = .seconds(10)
        if let tls = options.tls, !tls.linksOnly {
            c.tls = tls.certificates.clientTLS(withClientCertificate: tls.authClients)
            c.tls?.serverName = tls.serverName
        }
        return c
    }

    /// A URL for this server (password left out; `rediss://` for a TLS server).
    public var url: String {
        switch endpoint {
        case .tcp(let host, let port): return "redis\(options.tls.map { !$0.linksOnly } ?? false ? "s" : "")://\(host):\(port)"
        case .unix(let path): return "unix://\(path)"
        }
    }

    /// The server's PID while it runs.
    public var pid: Int32? { running.withLock { $0?.pid } }

    /// Starts the server again on the same address and directory (after ``stop()`` or ``kill()``).
    /// With `untilLoaded` false it returns as soon as the server answers, even if only with
    /// `LOADING` (its dataset still being read: a test of what clients see meanwhile).
    public func restart(untilLoaded: Bool = true) async throws {
        try await launch(untilLoaded: untilLoaded)
    }

    /// SIGTERM and wait for the exit. Safe to call when not running.
    public func stop() async {
        await signalAndWait(SIGTERM)
    }

    /// SIGKILL (a crash: no shutdown save, no goodbye to clients) and wait for the exit.
    public func kill() async {
        await signalAndWait(SIGKILL)
    }

    /// Stops the server and removes its directory.
    public func destroy() async {
        await stop()
        try? FileManager.default.removeItem(atPath: directory)
        LiveServers.removed(directory: directory)
    }

    private func signalAndWait(_ signal: Int32) async {
        guard let current = running.withLock({ $0 }) else { return }
        current.child.signal(signal)
        await current.child.wait()
        running.withLock { $0 = nil }
        LiveServers.remove(current.pid)
    }

    private func arguments() throws -> [String] {
        var args: [String] = []
        if let sentinel = options.sentinel, case .tcp(let host, let port) = sentinel.primary {
            // Sentinel needs a config file it can rewrite; written once, kept across restarts.
            let file = directory + "/sentinel.conf"
            if !FileManager.default.fileExists(atPath: file) {
                let ms = { (d: Duration) in String(d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000) }
                let text = """
                    sentinel monitor \(sentinel.masterName) \(host) \(port) \(sentinel.quorum)
                    sentinel down-after-milliseconds \(sentinel.masterName) \(ms(sentinel.downAfter))
                    sentinel failover-timeout \(sentinel.masterName) \(ms(sentinel.failoverTimeout))
                    sentinel parallel-syncs \(sentinel.masterName) 1
                    \(sentinel.sentinelPassword.map { "sentinel sentinel-pass \($0)" } ?? "")

                    """
                try text.write(toFile: file, atomically: true, encoding: .utf8)
            }
            args += [file, "--sentinel"]
        }
        args += [
            "--daemonize", "no",
            "--dir", directory,
            "--pidfile", directory + "/redis.pid",
            "--logfile", directory + "/redis.log",
            "--save", "",
            "--protected-mode", "yes",
        ]
        switch endpoint {
        case .unix(let path):
            args += ["--port", "0", "--unixsocket", path, "--unixsocketperm", "700"]
        case .tcp(let host, let port):
            if let tls = options.tls, tls.linksOnly {
                args += [
                    "--port", String(port), "--bind", host,
                    "--tls-cert-file", tls.certFile, "--tls-key-file", tls.certificates.serverKeyFile, "--tls-ca-cert-file", tls.certificates.caFile,
                ]
            } else if let tls = options.tls {
                args += [
                    "--port", "0", "--tls-port", String(port), "--bind", host,
                    "--tls-cert-file", tls.certFile, "--tls-key-file", tls.certificates.serverKeyFile,
                    "--tls-ca-cert-file", tls.certificates.caFile, "--tls-auth-clients", tls.authClients ? "yes" : "no",
                ]
            } else {
                args += ["--port", String(port), "--bind", host]
            }
        }
        if options.sentinel != nil {
            return args + (options.password.map { ["--requirepass", $0] } ?? []) + options.extraArguments
        }
        if let fsync = options.appendFsync {
            args += ["--appendonly", "yes", "--appendfsync", fsync]
        } else {
            args += ["--appendonly", "no"]
        }
        if let password = options.password {
            args += ["--requirepass", password]
        }
        return args + options.extraArguments
    }

    private func launch(untilLoaded: Bool = true) async throws {
        guard let executable = Self.findExecutable("redis-server") else {
            throw StartError(description: "redis-server is not installed (apt-get install -y redis-server)")
        }
        let child = try ChildProcess(executable: executable, arguments: try arguments())
        let pid = child.pid
        running.withLock { $0 = Running(child: child) }
        LiveServers.add(pid, directory: directory)

        // Wait for PING, or for the process to die (bad argument, port taken).
        var probe = configuration
        // A server started with a wrong certificate on purpose still has to be seen answering.
        probe.tls?.insecureSkipVerify = true
        probe.retryDeadline = .seconds(20)
        probe.backoff = RetryBackoff(base: .milliseconds(2), cap: .milliseconds(50))
        let client = RedisClient(configuration: probe)
        let quickProbe = probe
        // Whichever comes first: the server answers PING, or the process exits.
        let once = ResumeOnce()
        let ready: Result<Void, any Error> = await withUnsafeContinuation { continuation in
            Task {
                do {
                    if untilLoaded {
                        try await client.ping()
                    } else {
                        try await Self.answers(configuration: quickProbe)
                    }
                    once.run { continuation.resume(returning: .success(())) }
                } catch {
                    once.run { continuation.resume(returning: .failure(error)) }
                }
            }
            Task {
                await child.wait()
                once.run { continuation.resume(returning: .failure(StartError(description: "redis-server exited at start: \(self.logTail())"))) }
            }
        }
        // Closed before returning, so the probe never holds one of the server's client slots.
        await client.close()
        if case .failure(let error) = ready {
            await signalAndWait(SIGKILL)
            throw error
        }
    }

    /// Waits (up to 20 s) until the server answers PING with PONG or with a `LOADING` error.
    private static func answers(configuration: RedisConfiguration) async throws {
        var quick = configuration
        quick.retryDeadline = .milliseconds(100)
        let deadline = ContinuousClock.now + .seconds(20)
        while true {
            let client = RedisClient(configuration: quick)
            do {
                try await client.ping()
                await client.close()
                return
            } catch {
                await client.close()
                if "\(error)".contains("LOADING") { return }
                guard ContinuousClock.now < deadline else { throw error }
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// The last lines of the server's log (for failures).
    public func logTail(lines: Int = 5) -> String {
        guard let text = try? String(contentsOfFile: directory + "/redis.log", encoding: .utf8) else { return "(no log)" }
        return text.split(separator: "\n").suffix(lines).joined(separator: " | ")
    }

    static func findExecutable(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for dir in path.split(separator: ":") + ["/usr/bin", "/usr/sbin"] {
            let candidate = "\(dir)/\(name)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    /// A loopback port free right now (the kernel's pick for an ephemeral bind).
    public static func freeLoopbackPort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw StartError(description: "socket() failed: errno \(errno)") }
        defer { Glibc.close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw StartError(description: "bind() failed: errno \(errno)") }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        return Int(UInt16(bigEndian: addr.sin_port))
    }
}

/// Runs the first closure given to it, ignores the rest: for racing two events into one continuation.
public final class ResumeOnce: Sendable {
    private let done = Mutex(false)
    public init() {}

    /// Runs `body` if nothing ran before; returns whether it ran.
    @discardableResult
    public func run(_ body: () -> Void) -> Bool {
        let first = done.withLock { d -> Bool in
            defer { d = true }
            return !d
        }
        if first { body() }
        return first
    }
}

/// Fires once when a process exits; any number of tasks may wait for it.
final class ExitSignal: Sendable {
    private let state = Mutex<(fired: Bool, waiters: [UnsafeContinuation<Void, Never>])>((false, []))

    func fire() {
        let waiters = state.withLock { s -> [UnsafeContinuation<Void, Never>] in
            s.fired = true
            defer { s.waiters = [] }
            return s.waiters
        }
        for w in waiters { w.resume() }
    }

    func wait() async {
        await withUnsafeContinuation { (c: UnsafeContinuation<Void, Never>) in
            let fired = state.withLock { s -> Bool in
                if !s.fired { s.waiters.append(c) }
                return s.fired
            }
            if fired { c.resume() }
        }
    }
}

/// Servers this process started and has not stopped: killed (by PID) at exit and their temp dirs
/// removed, so a test run leaves no server and no files behind.
enum LiveServers {
    private static let pids = Mutex<Set<Int32>>([])
    private static let directories = Mutex<Set<String>>([])
    private static let installAtExit: Void = {
        atexit {
            for pid in LiveServers.pids.withLock({ $0 }) { Glibc.kill(pid, SIGKILL) }
            for dir in LiveServers.directories.withLock({ $0 }) { try? FileManager.default.removeItem(atPath: dir) }
        }
    }()

    static func add(_ pid: Int32, directory: String) {
        _ = installAtExit
        pids.withLock { _ = $0.insert(pid) }
        directories.withLock { _ = $0.insert(directory) }
    }

    static func remove(_ pid: Int32) {
        pids.withLock { _ = $0.remove(pid) }
    }

    static func removed(directory: String) {
        directories.withLock { _ = $0.remove(directory) }
    }
}
