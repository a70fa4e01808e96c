/// Facts about a Redis server from `INFO`, and the durability check workers run at start
/// (`docs/guarantees.md`: AOF on, `maxmemory-policy noeviction`).
package struct RedisServerInfo: Sendable {
    /// Every `field:value` line of `INFO server`, `INFO persistence` and `INFO memory`.
    package let fields: [String: String]

    package init(fields: [String: String]) {
        self.fields = fields
    }

    /// Reads `INFO server`, `persistence` and `memory` in one flight.
    package static func fetch(from client: RedisClient) async throws(RedisError) -> RedisServerInfo {
        let replies = try await client.pipeline(
            [
                RedisCommand("INFO", "server"), RedisCommand("INFO", "persistence"), RedisCommand("INFO", "memory"),
            ], idempotent: true)
        var fields: [String: String] = [:]
        for reply in replies {
            if let message = reply.errorMessage {
                throw RedisError(.serverError, endpoint: client.configuration.displayEndpoint, detail: "INFO failed: \(message)")
            }
            for line in (reply.string ?? "").split(whereSeparator: \.isNewline) {
                guard !line.hasPrefix("#"), let colon = line.firstIndex(of: ":") else { continue }
                fields[String(line[..<colon])] = String(line[line.index(after: colon)...])
            }
        }
        return RedisServerInfo(fields: fields)
    }

    package var version: String { fields["redis_version"] ?? "unknown" }
    package var aofEnabled: Bool { fields["aof_enabled"] == "1" }
    package var maxmemoryPolicy: String { fields["maxmemory_policy"] ?? "unknown" }
    package var usedMemory: Int? { fields["used_memory"].flatMap { Int($0) } }
    /// The server's `hz` (ticks per second), which blocking timeouts are rounded to.
    package var hz: Int? { fields["hz"].flatMap { Int($0) } }

    /// What makes acknowledged jobs losable on this server, in words an operator can act on.
    /// Empty when the server is set up as `docs/guarantees.md` requires.
    package var durabilityProblems: [String] {
        var problems: [String] = []
        if !aofEnabled {
            problems.append("AOF is off (appendonly no): a Redis restart loses every job since the last snapshot; set appendonly yes, appendfsync everysec")
        }
        if maxmemoryPolicy != "noeviction" {
            problems.append("maxmemory-policy is \(maxmemoryPolicy): Redis may evict job keys under memory pressure; set maxmemory-policy noeviction")
        }
        return problems
    }
}
