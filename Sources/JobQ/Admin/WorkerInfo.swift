public import Foundation

/// A live worker, from its heartbeat (`jobq:worker:<id>`, fields in `HeartbeatField`).
public struct WorkerInfo: Sendable, Hashable, Codable {
    public var id: String
    public var host: String
    public var pid: Int
    public var queues: [String]
    /// Its slots now (an operator or the app may have changed them since the start).
    public var concurrency: Int
    public var active: Int
    /// `running`, `paused` (quiet: finishing what runs, taking nothing) or `stopping`.
    public var state: String
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
                concurrency: Int(f(.concurrency) ?? "") ?? 0, active: Int(f(.active) ?? "") ?? 0, state: f(.state) ?? "running",
                started: date(.started), lastSeen: date(.lastSeen))
            if let queue, !info.queues.contains(where: { $0 == queue || $0.hasPrefix(queue + ":") }) { continue }
            out.append(info)
        }
        return out
    }
}

/// Run-time control of one live worker by id (`docs/flow-control.md`): what `jobq-admin workers
/// pause|resume|concurrency` and an autoscaler call. The request is stored in the worker's
/// record and the worker is nudged on the control channel: it applies the request at once, or
/// at its next heartbeat (a lease/3 at most) when it missed the nudge (always, in a cluster).
extension WorkerInfo {
    /// Pauses the worker, quietly: it finishes what runs and takes nothing. Returns how many
    /// subscribers heard the nudge (0: the worker applies it at its next beat).
    @discardableResult
    public static func pause(_ workerID: String, client: RedisClient) async throws(JobQError) -> Int {
        try await request(workerID, .wantPaused, "1", client: client)
    }

    /// Resumes a paused worker.
    @discardableResult
    public static func resume(_ workerID: String, client: RedisClient) async throws(JobQError) -> Int {
        try await request(workerID, .wantPaused, "0", client: client)
    }

    /// Changes how many jobs the worker runs at once (1…10,000).
    @discardableResult
    public static func setConcurrency(_ workerID: String, to slots: Int, client: RedisClient) async throws(JobQError) -> Int {
        guard (1...10_000).contains(slots) else { throw JobQError(.invalidOptions, detail: "concurrency: \(slots) is outside 1…10000") }
        return try await request(workerID, .wantConcurrency, String(slots), client: client)
    }

    private static func request(_ workerID: String, _ field: HeartbeatField, _ value: String, client: RedisClient) async throws(JobQError) -> Int {
        let scripts = try QueueScripts.get()
        let call = ScriptCall<Int?>.controlWorker(scripts, workerID: workerID, field: field, value: value)
        let reply: RedisReply
        do {
            reply = try await client.run(call.script, keys: call.keys, arguments: call.arguments, idempotent: true)
        } catch {
            throw JobQError(redis: error, queue: nil)
        }
        if let message = reply.errorMessage {
            if reply.errorCode == "OOM" { throw JobQError(.outOfMemory, detail: "Redis refused the write: \(message)") }
            if message.contains("NOPERM") || message.contains("No permissions") {
                throw JobQError(.permissionDenied, detail: QueueCore.permissionDetail(message, script: call.script))
            }
            throw JobQError(.internalError, detail: "\(call.script.name) failed: \(message)")
        }
        guard let heard = try call.decode(reply) else {
            throw JobQError(.notFound, detail: "no live worker \(workerID) (jobq-admin workers lists the live ones)")
        }
        return heard
    }
}
