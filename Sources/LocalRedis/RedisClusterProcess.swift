import Foundation
public import JobQ

#if canImport(Glibc)
    import Glibc
#endif

/// A private Redis Cluster on loopback: N `redis-server --cluster-enabled yes` processes (each a
/// ``RedisServerProcess`` with its own temp dir, client port and cluster-bus port), joined with
/// `redis-cli --cluster create`, optionally with replicas. Stopped by PID.
public final class RedisClusterProcess: Sendable {
    public let nodes: [RedisServerProcess]
    /// TLS on every node, the cluster bus and replication (`tls-cluster`, `tls-replication`).
    public let tls: RedisServerProcess.ServerTLS?

    public struct StartError: Error, CustomStringConvertible {
        public let description: String
    }

    private init(nodes: [RedisServerProcess], tls: RedisServerProcess.ServerTLS?) {
        self.nodes = nodes
        self.tls = tls
    }

    /// `redis-cli`'s TLS flags for this cluster (none without TLS).
    var cliTLSArguments: [String] {
        guard let tls else { return [] }
        var args = ["--tls", "--cacert", tls.certificates.caFile]
        if tls.authClients { args += ["--cert", tls.certificates.clientCertFile, "--key", tls.certificates.clientKeyFile] }
        return args
    }

    /// Starts `primaries` primaries (and `replicas` replicas of each), assigns the 16,384 slots
    /// evenly and waits (up to 30 s) until every node reports `cluster_state:ok`.
    /// With `tls`, every node serves TLS only, and the cluster bus and replication run TLS too.
    /// `configureNode` adjusts node `i`'s options last (its own certificate, its own arguments).
    public static func start(
        primaries: Int = 3, replicas: Int = 0, extraArguments: [String] = [], tls: RedisServerProcess.ServerTLS? = nil,
        configureNode: (Int, inout RedisServerProcess.Options) -> Void = { _, _ in }
    ) async throws -> RedisClusterProcess {
        var nodes: [RedisServerProcess] = []
        do {
            for i in 0..<(primaries * (1 + replicas)) {
                let bus = try RedisServerProcess.freeLoopbackPort()
                var options = RedisServerProcess.Options(
                    transport: .tcp,
                    extraArguments: [
                        "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-port", String(bus),
                        "--cluster-node-timeout", "2000",
                    ] + (tls != nil ? ["--tls-cluster", "yes", "--tls-replication", "yes"] : []) + extraArguments)
                options.tls = tls
                configureNode(i, &options)
                nodes.append(try await RedisServerProcess.start(options))
            }
            let cluster = RedisClusterProcess(nodes: nodes, tls: tls)
            guard let cli = RedisServerProcess.findExecutable("redis-cli") else {
                throw StartError(description: "redis-cli is not installed (apt-get install -y redis-tools)")
            }
            let output = FileManager.default.temporaryDirectory.appendingPathComponent("jobq-cluster-\(UUID().uuidString).txt").path
            defer { try? FileManager.default.removeItem(atPath: output) }
            let create = try ChildProcess(
                executable: cli,
                arguments: cluster.cliTLSArguments + ["--cluster", "create"] + cluster.addresses
                    + ["--cluster-replicas", String(replicas), "--cluster-yes"], outputPath: output)
            // Bounded: a cluster whose bus cannot connect leaves redis-cli waiting forever.
            let watchdog = Task {
                try? await Task.sleep(for: .seconds(60))
                if !Task.isCancelled, !create.hasExited { create.signal(SIGKILL) }
            }
            let status = await create.wait()
            watchdog.cancel()
            guard status == 0 else {
                throw StartError(description: "redis-cli --cluster create failed: \((try? String(contentsOfFile: output, encoding: .utf8))?.suffix(500) ?? "")")
            }
            try await cluster.waitUntilHealthy()
            return cluster
        } catch {
            for n in nodes { await n.destroy() }
            throw error
        }
    }

    /// `host:port` of every node.
    public var addresses: [String] {
        nodes.map { n in
            if case .tcp(let host, let port) = n.endpoint { return "\(host):\(port)" }
            return n.url
        }
    }

    /// `redis+cluster://` (`rediss+cluster://` with TLS) with every node as a seed.
    public var url: String { "redis\(tls != nil ? "s" : "")+cluster://" + addresses.joined(separator: ",") }

    /// Settings for a cluster client.
    public var configuration: RedisConfiguration {
        var c = RedisConfiguration(endpoint: nodes[0].endpoint)
        c.clusterSeeds = nodes.map(\.endpoint)
        c.retryDeadline = .seconds(20)
        c.tls = nodes[0].configuration.tls
        return c
    }

    /// Waits until every running node says `cluster_state:ok` and agrees all slots are served,
    /// and every replica is in sync with its primary (`master_link_status:up`).
    public func waitUntilHealthy(seconds: Double = 30) async throws {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while true {
            var healthy = true
            for node in nodes where node.pid != nil {
                let client = RedisClient(configuration: node.configuration)
                let info = (try? await client.send("CLUSTER", "INFO"))?.string ?? ""
                let replication = (try? await client.send("INFO", "replication"))?.string ?? ""
                await client.close()
                if !info.contains("cluster_state:ok") || !info.contains("cluster_slots_assigned:16384") { healthy = false }
                if replication.contains("role:slave") && !replication.contains("master_link_status:up") { healthy = false }
            }
            if healthy { return }
            guard ContinuousClock.now < deadline else { throw StartError(description: "the cluster did not become healthy within \(Int(seconds)) s") }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    /// The primary serving `slot`, as the running nodes see it (nil while they disagree or none does).
    public func owner(ofSlot slot: Int) async -> RedisEndpoint? {
        var owners = Set<RedisEndpoint>()
        for node in nodes where node.pid != nil {
            let client = RedisClient(configuration: node.configuration)
            let ranges = (try? await client.send("CLUSTER", "SLOTS"))?.array ?? []
            await client.close()
            var found: RedisEndpoint?
            for range in ranges {
                guard let items = range.array, items.count >= 3, let low = items[0].int, let high = items[1].int,
                    (low...high).contains(slot), let master = items[2].array, master.count >= 2,
                    let host = master[0].string, let port = master[1].int
                else { continue }
                found = .tcp(host: host, port: port)
            }
            guard let found else { return nil }
            owners.insert(found)
        }
        return owners.count == 1 ? owners.first : nil
    }

    /// The lowest slot `endpoint` serves (what `redis-cli --cluster reshard` moves first from it).
    public func lowestSlot(of endpoint: RedisEndpoint) async -> Int? {
        guard let node = nodes.first(where: { $0.endpoint == endpoint }) else { return nil }
        let client = RedisClient(configuration: node.configuration)
        defer { Task { await client.close() } }
        let ranges = (try? await client.send("CLUSTER", "SLOTS"))?.array ?? []
        var lowest: Int?
        for range in ranges {
            guard let items = range.array, items.count >= 3, let low = items[0].int, let master = items[2].array, master.count >= 2,
                let host = master[0].string, let port = master[1].int, RedisEndpoint.tcp(host: host, port: port) == endpoint
            else { continue }
            lowest = min(lowest ?? low, low)
        }
        return lowest
    }

    /// `redis-cli --cluster reshard`: moves `slots` slots (the lowest first) from `source` to
    /// `target`, keys and all, as an operator would. Returns redis-cli's exit status and output.
    public func reshard(from source: RedisEndpoint, to target: RedisEndpoint, slots: Int) async throws -> (status: Int32, output: String) {
        guard let cli = RedisServerProcess.findExecutable("redis-cli") else {
            throw StartError(description: "redis-cli is not installed (apt-get install -y redis-tools)")
        }
        func id(_ e: RedisEndpoint) async throws -> String {
            guard let node = nodes.first(where: { $0.endpoint == e }) else { throw StartError(description: "no node at \(e)") }
            let client = RedisClient(configuration: node.configuration)
            defer { Task { await client.close() } }
            guard let id = try await client.send("CLUSTER", "MYID").string else { throw StartError(description: "CLUSTER MYID failed at \(e)") }
            return id
        }
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("jobq-reshard-\(UUID().uuidString).txt").path
        defer { try? FileManager.default.removeItem(atPath: output) }
        let child = try ChildProcess(
            executable: cli,
            arguments: cliTLSArguments + [
                "--cluster", "reshard", source.description,
                "--cluster-from", try await id(source), "--cluster-to", try await id(target),
                "--cluster-slots", String(slots), "--cluster-yes", "--cluster-pipeline", "10",
            ], outputPath: output)
        let status = await child.wait()
        return (status, (try? String(contentsOfFile: output, encoding: .utf8)) ?? "")
    }

    /// Stops every node and removes their directories.
    public func destroy() async {
        for n in nodes { await n.destroy() }
    }
}
