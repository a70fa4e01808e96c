import Foundation
public import JobQ

/// A private Redis Sentinel setup on loopback: one primary, its replicas (`--replicaof`), and
/// sentinels watching the primary with a quorum of a majority and a short `down-after` (1 s), so a
/// killed primary is replaced within seconds. Every process is a ``RedisServerProcess`` with its
/// own temp dir, stopped by PID.
public final class RedisSentinelProcess: Sendable {
    public let masterName: String
    /// The servers: index 0 is the first primary, the rest start as its replicas.
    public let servers: [RedisServerProcess]
    public let sentinels: [RedisServerProcess]

    public struct StartError: Error, CustomStringConvertible {
        public let description: String
    }

    /// The sentinels' own password, if they have one.
    public let sentinelPassword: String?

    /// TLS on every data node and sentinel, when started so.
    public let tls: RedisServerProcess.ServerTLS?

    private init(
        masterName: String, servers: [RedisServerProcess], sentinels: [RedisServerProcess], sentinelPassword: String?, tls: RedisServerProcess.ServerTLS?
    ) {
        self.tls = tls
        self.masterName = masterName
        self.servers = servers
        self.sentinels = sentinels
        self.sentinelPassword = sentinelPassword
    }

    /// Starts the primary, `replicas` replicas and `sentinels` sentinels, and waits (up to 30 s)
    /// until the replicas are in sync and every sentinel sees all replicas and the other sentinels.
    /// With `sentinelPassword`, the sentinels require it (`requirepass`) and use it with each other.
    public static func start(
        masterName: String = "jobq", replicas: Int = 1, sentinels sentinelCount: Int = 3,
        downAfter: Duration = .seconds(1), sentinelPassword: String? = nil, tls: RedisServerProcess.ServerTLS? = nil,
        plainSentinels: Bool = false
    ) async throws -> RedisSentinelProcess {
        // With TLS every data node and sentinel serves TLS only, and replication and the
        // sentinels' own links run TLS too.
        let tlsLinks = tls != nil ? ["--tls-replication", "yes"] : []
        var servers: [RedisServerProcess] = []
        var sentinels: [RedisServerProcess] = []
        do {
            var primaryOptions = RedisServerProcess.Options(transport: .tcp, extraArguments: tlsLinks)
            primaryOptions.tls = tls
            let primary = try await RedisServerProcess.start(primaryOptions)
            servers.append(primary)
            guard case .tcp(let host, let port) = primary.endpoint else { throw StartError(description: "tcp expected") }
            for _ in 0..<replicas {
                var replicaOptions = RedisServerProcess.Options(transport: .tcp, extraArguments: ["--replicaof", host, String(port)] + tlsLinks)
                replicaOptions.tls = tls
                servers.append(try await RedisServerProcess.start(replicaOptions))
            }
            for _ in 0..<sentinelCount {
                var options = RedisServerProcess.Options(transport: .tcp, password: sentinelPassword, extraArguments: tlsLinks)
                options.tls = tls
                // Plain sentinels still reach the TLS data nodes over TLS.
                if plainSentinels { options.tls?.linksOnly = true }
                options.sentinel = .init(
                    masterName: masterName, primary: primary.endpoint, quorum: sentinelCount / 2 + 1, downAfter: downAfter,
                    sentinelPassword: sentinelPassword)
                sentinels.append(try await RedisServerProcess.start(options))
            }
            let setup = RedisSentinelProcess(
                masterName: masterName, servers: servers, sentinels: sentinels, sentinelPassword: sentinelPassword, tls: tls)
            try await setup.waitUntilHealthy()
            return setup
        } catch {
            for p in servers + sentinels { await p.destroy() }
            throw error
        }
    }

    /// `redis+sentinel://` with every sentinel.
    public var url: String {
        "redis\(tls != nil ? "s" : "")+sentinel://" + sentinels.map(\.endpoint.description).joined(separator: ",") + "/" + masterName
    }

    /// Settings for a Sentinel-mode client.
    public var configuration: RedisConfiguration {
        var c = RedisConfiguration(endpoint: sentinels[0].endpoint)
        c.sentinel = RedisSentinelSettings(masterName: masterName, nodes: sentinels.map(\.endpoint), password: sentinelPassword)
        c.tls = servers[0].configuration.tls
        c.sentinel?.tls = sentinels[0].configuration.tls
        c.retryDeadline = .seconds(20)
        return c
    }

    /// The primary as the running sentinels name it (nil while they disagree or none answers).
    public func primary() async -> RedisEndpoint? {
        var named = Set<RedisEndpoint>()
        for s in sentinels where s.pid != nil {
            let client = RedisClient(configuration: s.configuration)
            let reply = try? await client.send("SENTINEL", "get-master-addr-by-name", masterName)
            await client.close()
            guard let parts = reply?.array, parts.count == 2, let host = parts[0].string, let port = parts[1].string.flatMap({ Int($0) }) else { return nil }
            named.insert(.tcp(host: host, port: port))
        }
        return named.count == 1 ? named.first : nil
    }

    /// The server process listening at `endpoint`.
    public func server(at endpoint: RedisEndpoint) -> RedisServerProcess? {
        servers.first { $0.endpoint == endpoint }
    }

    /// Waits until the sentinels agree on a primary that says `role:master`, every other running
    /// server is its replica with the link up, and every sentinel knows the others and the replicas.
    public func waitUntilHealthy(seconds: Double = 30) async throws {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while true {
            if await isHealthy() { return }
            guard ContinuousClock.now < deadline else {
                throw StartError(description: "the Sentinel setup did not become healthy within \(Int(seconds)) s")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    private func isHealthy() async -> Bool {
        guard let primary = await primary() else { return false }
        let running = servers.filter { $0.pid != nil }
        for server in running {
            let client = RedisClient(configuration: server.configuration)
            let info = (try? await client.send("INFO", "replication"))?.string ?? ""
            await client.close()
            if server.endpoint == primary {
                if !info.contains("role:master") || !info.contains("connected_slaves:\(running.count - 1)") { return false }
            } else if !info.contains("role:slave") || !info.contains("master_link_status:up") {
                return false
            }
        }
        for s in sentinels where s.pid != nil {
            let client = RedisClient(configuration: s.configuration)
            let reply = try? await client.send("SENTINEL", "master", masterName)
            await client.close()
            // A flat field/value list.
            var fields: [String: String] = [:]
            let items = reply?.array ?? []
            for i in stride(from: 0, to: items.count - 1, by: 2) {
                if let k = items[i].string, let v = items[i + 1].string { fields[k] = v }
            }
            let otherSentinels = sentinels.filter { $0.pid != nil }.count - 1
            guard fields["num-other-sentinels"] == String(otherSentinels), fields["num-slaves"] == String(running.count - 1),
                fields["flags"] == "master"
            else { return false }
        }
        return true
    }

    /// Stops every process and removes their directories.
    public func destroy() async {
        for p in sentinels + servers { await p.destroy() }
    }
}
