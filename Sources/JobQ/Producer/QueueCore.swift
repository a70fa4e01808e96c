import Foundation
import Synchronization

/// One queue's keys, scripts and client, and every script call with its reply decoded. The
/// public faces (``JobQueue``, ``QueueInspector``, the worker) are thin layers over this.
final class QueueCore: Sendable {
    let keys: QueueKeys
    let client: RedisClient
    let settings: QueueSettings
    let scripts: QueueScripts
    private let registered = Atomic<Bool>(false)

    var name: String { keys.queue }

    init(name: String, client: RedisClient, settings: QueueSettings) throws(JobQError) {
        self.keys = try QueueKeys(queue: name)
        self.client = client
        var s = settings
        s.batchSize = min(max(s.batchSize, 1), 1000)
        self.settings = s
        self.scripts = try QueueScripts.get()
    }

    // MARK: - Calling scripts

    /// Runs one script; a Redis failure or error reply becomes a ``JobQError``.
    func run(_ script: RedisScript, keys: [String], arguments: [any RedisArgument], jobID: String? = nil, idempotent: Bool = false) async throws(JobQError)
        -> RedisReply
    {
        let reply: RedisReply
        do {
            reply = try await client.run(script, keys: keys, arguments: arguments, idempotent: idempotent)
        } catch {
            throw JobQError(redis: error, queue: name, jobID: jobID)
        }
        try check(reply, script: script, jobID: jobID)
        return reply
    }

    /// Runs a batch in one flight; returns each reply (error replies included, unchecked).
    func execute(_ batch: RedisBatch, idempotent: Bool) async throws(JobQError) -> [RedisReply] {
        do {
            return try await client.execute(batch, idempotent: idempotent)
        } catch {
            throw JobQError(redis: error, queue: name)
        }
    }

    /// Turns an error reply into the matching error: `OOM` → outOfMemory, `WRONGTYPE` →
    /// keyConflict; anything else is a bug.
    func check(_ reply: RedisReply, script: RedisScript?, jobID: String?) throws(JobQError) {
        guard let message = reply.errorMessage else { return }
        if reply.errorCode == "OOM" {
            throw JobQError(.outOfMemory, queue: name, jobID: jobID, detail: "Redis refused the write: \(message)")
        }
        if reply.errorCode == "NOPERM" || message.contains("NOPERM") || message.contains("can't run this command")
            || message.contains("No permissions to access") || message.contains("can't access at least one of the keys")
        {
            throw JobQError(.permissionDenied, queue: name, jobID: jobID, detail: Self.permissionDetail(message, script: script))
        }
        if reply.errorCode == "WRONGTYPE" || message.contains("WRONGTYPE") {
            throw JobQError(
                .keyConflict, queue: name, jobID: jobID,
                detail: "\(script?.name ?? "a command") met a key under \(keys.base) holding another type of value than jobq's (\(message.prefix(200)))")
        }
        throw JobQError(.internalError, queue: name, jobID: jobID, detail: "\(script?.name ?? "command") failed: \(message)")
    }

    /// What a refused call needed. A script's refusal only names the script's line
    /// (`@user_script:195`), so the Redis command on that line of the source is named instead.
    static func permissionDetail(_ message: String, script: RedisScript?) -> String {
        guard let script else { return "Redis refused the command: \(message.prefix(300))" }
        if let match = message.firstMatch(of: /@user_script:(\d+)/), let line = Int(match.1) {
            let lines = script.source.split(separator: "\n", omittingEmptySubsequences: false)
            if line >= 1, line <= lines.count {
                let text = lines[line - 1]
                if let command = text.firstMatch(of: /redis\.call\('([A-Za-z]+)'/) {
                    return "the Redis user may not run \(command.1.uppercased()), which \(script.name) needs"
                }
                return "the Redis user may not run a command \(script.name) needs (its line: \(text.trimmingCharacters(in: .whitespaces).prefix(120)))"
            }
        }
        return "Redis refused \(script.name): \(message.prefix(300))"
    }

    /// The queue's fixed keys that hold another type of value than jobq keeps there (something
    /// else wrote under the prefix), as "key is a T (jobq keeps a U there)". Read-only.
    func keyConflicts() async throws(JobQError) -> [String] {
        let expected: [(String, String)] = [
            (keys.wait, "list"), (keys.prioritized, "zset"), (keys.delayed, "zset"), (keys.active, "zset"),
            (keys.completed, "zset"), (keys.failed, "zset"), (keys.cancelled, "zset"), (keys.meta, "hash"),
            (keys.marker, "zset"), (keys.events, "stream"), (keys.sequence, "string"), (keys.reaperLock, "string"),
            (keys.rate, "list"), (keys.groupPrefix + "ready", "zset"), (keys.groupPrefix + "later", "zset"),
            (keys.groupPrefix + "blocked", "set"), (keys.groupPrefix + "waiting", "string"), (keys.knownGroups, "set"),
        ]
        var batch = RedisBatch()
        for (key, _) in expected { batch.append(RedisCommand("TYPE", key)) }
        let replies = try await execute(batch, idempotent: true)
        return zip(expected, replies).compactMap { pair, reply in
            let actual = reply.string ?? "unknown"
            return actual == "none" || actual == pair.1 ? nil : "\(pair.0) is a \(actual) (jobq keeps a \(pair.1) there)"
        }
    }

    /// The leading status of a script reply: a ``ScriptCode`` when negative.
    static func status(_ reply: RedisReply) -> Int? {
        if case .array(let items) = reply { return items.first?.int }
        return reply.int
    }

    func unexpected(_ reply: RedisReply, _ script: RedisScript, jobID: String? = nil) -> JobQError {
        JobQError(.internalError, queue: name, jobID: jobID, detail: "\(script.name) answered \(reply)")
    }

    /// Registers the queue in the global `jobq:queues` set once per process (its own slot, so
    /// not inside a queue script). Added to the first add's flight.
    func registration() -> RedisCommand? {
        registered.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged
            ? RedisCommand("SADD", QueueKeys.queueRegistry, name) : nil
    }

    // MARK: - Key lists, in each script's header order

    func addKeys(_ id: String) -> [String] {
        [keys.job(id), keys.wait, keys.prioritized, keys.delayed, keys.marker, keys.events, keys.sequence, keys.meta, keys.groupPrefix]
    }
    var addJobsKeys: [String] {
        [keys.jobPrefix, keys.wait, keys.prioritized, keys.delayed, keys.marker, keys.events, keys.sequence, keys.meta, keys.groupPrefix]
    }
    var takeKeys: [String] {
        [
            keys.wait, keys.prioritized, keys.active, keys.delayed, keys.meta, keys.marker, keys.events, keys.sequence, keys.jobPrefix, keys.rate,
            keys.groupPrefix,
        ]
    }
    func finishKeys(_ id: String) -> [String] {
        [
            keys.job(id), keys.active, keys.wait, keys.prioritized, keys.delayed, keys.completed, keys.failed, keys.cancelled,
            keys.meta, keys.marker, keys.events, keys.sequence, keys.jobPrefix, keys.rate, keys.groupPrefix,
        ]
    }
    var recoverKeys: [String] {
        [
            keys.active, keys.wait, keys.prioritized, keys.failed, keys.cancelled, keys.meta, keys.marker, keys.events, keys.sequence, keys.jobPrefix,
            keys.reaperLock, keys.groupPrefix,
        ]
    }
    var cancelKeys: [String] {
        [keys.wait, keys.prioritized, keys.delayed, keys.cancelled, keys.meta, keys.events, keys.cancelChannel, keys.jobPrefix, keys.groupPrefix]
    }
    var removeKeys: [String] {
        [keys.wait, keys.prioritized, keys.delayed, keys.completed, keys.failed, keys.cancelled, keys.events, keys.jobPrefix, keys.groupPrefix]
    }
    /// Ids per cancel or remove call: each waiting id costs a scan of the wait list (LREM), so
    /// a batch stays well inside Redis's slow-script budget even on long queues.
    var idBatch: Int { min(settings.batchSize, 200) }
    var pauseKeys: [String] { [keys.meta, keys.marker, keys.events] }
    var limitsKeys: [String] { [keys.meta, keys.marker, keys.events, keys.rate, keys.sequence, keys.groupPrefix] }
    var groupSettingsKeys: [String] { [keys.groupPrefix, keys.sequence, keys.marker, keys.events] }
    var countGroupsKeys: [String] { [keys.meta, keys.groupPrefix] }
    var purgeKeys: [String] { [keys.wait, keys.prioritized, keys.delayed, keys.events, keys.jobPrefix, keys.groupPrefix] }
    func cleanKeys(_ state: JobState) -> [String] { [keys.set(for: state), keys.events, keys.jobPrefix] }
    var countKeys: [String] {
        [keys.wait, keys.prioritized, keys.delayed, keys.active, keys.completed, keys.failed, keys.cancelled, keys.meta, keys.rate, keys.groupPrefix]
    }
    var retryKeys: [String] {
        [keys.failed, keys.cancelled, keys.wait, keys.prioritized, keys.marker, keys.events, keys.sequence, keys.jobPrefix, keys.groupPrefix]
    }
    var obliterateKeys: [String] {
        [
            keys.meta, keys.wait, keys.prioritized, keys.delayed, keys.active, keys.completed, keys.failed, keys.cancelled,
            keys.events, keys.marker, keys.sequence, keys.reaperLock, keys.jobPrefix, keys.rate, keys.groupPrefix,
            keys.schedulePrefix,
        ]
    }
    var extendKeys: [String] { [keys.active, keys.jobPrefix] }
    func progressKeys(_ id: String) -> [String] { [keys.job(id), keys.events] }
    func checkpointKeys(_ id: String) -> [String] { [keys.job(id)] }
    func removeNamedKeys(_ key: String) -> [String] { [key, keys.events, keys.jobPrefix, keys.groupPrefix] }
    var readEventsKeys: [String] { [keys.events] }
    func scheduleChangeKeys(_ id: String) -> [String] {
        [keys.schedule(id), keys.scheduleIDs, keys.scheduleDue, keys.jobPrefix, keys.delayed, keys.events, keys.cancelChannel]
    }
    var dueSchedulesKeys: [String] { [keys.scheduleDue, keys.scheduleHashPrefix] }
    var advanceSchedulesKeys: [String] {
        [
            keys.scheduleHashPrefix, keys.scheduleDue, keys.jobPrefix, keys.wait, keys.prioritized, keys.delayed, keys.marker, keys.events,
            keys.sequence, keys.meta, keys.groupPrefix, keys.cancelled, keys.cancelChannel,
        ]
    }
    /// Cancel requests and schedule nudges go out with `SPUBLISH` (cluster) or `PUBLISH`.
    var sharded: Bool { settings.shardedPubSub || client.configuration.isCluster }

    var maxLen: String { String(settings.eventsMaxLength) }
}
