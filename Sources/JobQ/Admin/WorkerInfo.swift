public import Foundation

/// A live worker, from its heartbeat (`jobq:worker:<id>`, fields in `HeartbeatField`).
public struct WorkerInfo: Sendable, Hashable, Codable {
    public var id: String
    public var host: String
    public var pid: Int
    public var queues: [String]
    public var concurrency: Int
    public var active: Int
    public var started: Date?
    public var lastSeen: Date?

    static func key(for workerID: String) -> String { QueueKeys.heartbeat(of: workerID) }

    /// Live workers (those that beat within 3 beats), by id; optionally only those serving `queue`.
    public static func list(client: RedisClient, queue: String? = nil) async throws(JobQError) -> [WorkerInfo] {
        let ids: [String]
        do {
            ids = (try await client.send(RedisCommand("ZRANGE", QueueKeys.workerRegistry, 0, -1), idempotent: true).array ?? []).compactMap(\.string)
        } catch {
            throw JobQError(redis: error, queue: nil)
        }
        guard !ids.isEmpty else { return [] }
        let replies: [RedisReply]
        do {
            replies = try await client.pipeline(ids.map { RedisCommand("HGETALL", key(for: $0)) }, idempotent: true)
        } catch {
            throw JobQError(redis: error, queue: nil)
        }
        var out: [WorkerInfo] = []
        for (id, reply) in zip(ids, replies) {
            guard let flat = reply.array, !flat.isEmpty else { continue }  // expired: gone
            var fields: [String: String] = [:]
            var i = 0
            while i + 1 < flat.count {
                if let k = flat[i].string, let v = flat[i + 1].string { fields[k] = v }
                i += 2
            }
            func f(_ field: HeartbeatField) -> String? { fields[field.rawValue] }
            func date(_ field: HeartbeatField) -> Date? { f(field).flatMap(Double.init).map { Date(timeIntervalSince1970: $0 / 1000) } }
            let info = WorkerInfo(
                id: id, host: f(.host) ?? "", pid: Int(f(.pid) ?? "") ?? 0,
                queues: (f(.queues) ?? "").split(separator: ",").map(String.init),
                concurrency: Int(f(.concurrency) ?? "") ?? 0, active: Int(f(.active) ?? "") ?? 0,
                started: date(.started), lastSeen: date(.lastSeen))
            if let queue, !info.queues.contains(where: { $0 == queue || $0.hasPrefix(queue + ":") }) { continue }
            out.append(info)
        }
        return out
    }
}
