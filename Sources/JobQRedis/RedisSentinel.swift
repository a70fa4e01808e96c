import Synchronization

/// Asks Redis Sentinel where the primary is (the client side of the Sentinel protocol, as the
/// Sentinel client guidelines describe it): each sentinel in turn, starting with the one that
/// answered last, is asked `SENTINEL get-master-addr-by-name`; the first address given wins. The
/// caller then connects there and checks `ROLE` (``RedisConnection``), so an answer that is stale
/// (a failover under way) costs one more round, never a write to a replica.
///
/// Runs on the calling connection's own thread: these are blocking hiredis calls.
enum RedisSentinelResolver {
    /// Per sentinel set, the index of the sentinel that answered last.
    private static let preferred = Mutex<[RedisSentinelSettings: Int]>([:])

    static func primary(_ settings: RedisSentinelSettings, connectTimeout: Duration, display: String) throws(RedisError) -> RedisEndpoint {
        guard !settings.nodes.isEmpty else {
            throw RedisError(.invalidURL, endpoint: display, detail: "no sentinels given")
        }
        let start = preferred.withLock { $0[settings] ?? 0 } % settings.nodes.count
        var problems: [String] = []
        var refusedAuth = 0
        var lastRefusal: RedisError.Code?
        for k in 0..<settings.nodes.count {
            let i = (start + k) % settings.nodes.count
            let node = settings.nodes[i]
            var c = RedisConfiguration(endpoint: node, username: settings.username, password: settings.password)
            c.connectTimeout = min(connectTimeout, .seconds(2))
            c.tls = settings.tls
            let connection = RedisConnection(configuration: c, replyTimeout: .seconds(2))
            defer { connection.close() }
            do {
                try connection.connect()
                let reply = try connection.roundTrip(RedisCommand("SENTINEL", "get-master-addr-by-name", settings.masterName))
                if let message = reply.errorMessage {
                    problems.append("sentinel \(node): \(RedisConnection.firstLine(message))")
                    continue
                }
                guard let parts = reply.array, parts.count == 2, let host = parts[0].string, !host.isEmpty,
                    let port = parts[1].string.flatMap({ Int($0) }), (1...65535).contains(port)
                else {
                    problems.append("sentinel \(node) knows no primary named \(settings.masterName) (check `sentinel monitor` and the name in the URL)")
                    continue
                }
                preferred.withLock { $0[settings] = i }
                return .tcp(host: host, port: port)
            } catch {
                if error.code == .authFailed || error.code == .tlsFailed {
                    refusedAuth += 1
                    lastRefusal = error.code
                }
                problems.append("sentinel \(node): \(error.detail)")
            }
        }
        // Every sentinel refusing our credentials (or our TLS) will not get better by waiting.
        let code: RedisError.Code = refusedAuth == settings.nodes.count ? (lastRefusal ?? .authFailed) : .connectionFailed
        throw RedisError(code, endpoint: display, detail: "no sentinel named the primary: " + problems.joined(separator: "; "))
    }

    /// `+switch-master <name> <old-ip> <old-port> <new-ip> <new-port>`: the primary `name` moved.
    static func isSwitch(of name: String, payload: [UInt8]) -> Bool {
        let prefix = Array(name.utf8) + [UInt8(ascii: " ")]
        return payload.count > prefix.count && Array(payload.prefix(prefix.count)) == prefix
    }
}
