public import Foundation

/// Counts of one queue's jobs per state, with its paused flag and flow limits.
public struct JobCounts: Sendable, Hashable, Codable {
    public var waiting = 0, delayed = 0, active = 0, completed = 0, failed = 0, cancelled = 0
    public var paused = false
    /// The queue's flow limits (`docs/flow-control.md`).
    public var limits = QueueLimits()
    /// Starts in the rate limit's current window (0 without a rate limit).
    public var startsInWindow = 0
    /// The limit refusing starts now while jobs wait: `throttled`, `concurrency` or `rate`,
    /// or `group` when every group with waiting jobs is held by its own limits (nil when none
    /// binds).
    public var limitedBy: String?
    /// Waiting jobs held back by a limit: all of them while ``limitedBy`` binds the queue,
    /// else those in groups that their limits hold (0 when none).
    public var waitingForLimit = 0
    /// How long ``limitedBy`` holds them, in ms (nil: until a slot frees).
    public var limitWaitMs: Int?
    /// Groups known to the queue: with waiting or running jobs, or settings of their own.
    public var groups = 0
    /// Groups in the rotation (a job of theirs may start now).
    public var groupsReady = 0
    /// Groups with waiting jobs that their limits hold (rate, concurrency, throttle, paused).
    public var groupsHeld = 0

    public init() {}

    public subscript(state: JobState) -> Int {
        switch state {
        case .waiting: waiting
        case .delayed: delayed
        case .active: active
        case .completed: completed
        case .failed: failed
        case .cancelled: cancelled
        }
    }
}

/// Queries and operator actions on one queue (what `jobq-admin` calls; `docs/job-lifecycle.md`). Every
/// action that touches many jobs runs as bounded script calls (≤ 1,000 jobs each).
public struct QueueInspector: Sendable {
    let core: QueueCore

    init(core: QueueCore) { self.core = core }

    public init(name: String, client: RedisClient, settings: QueueSettings = QueueSettings()) throws(JobQError) {
        core = try QueueCore(name: name, client: client, settings: settings)
    }

    public var name: String { core.name }

    // MARK: - Reading

    /// One job's record; nil if there is none.
    public func job(_ id: String) async throws(JobQError) -> Job? {
        let reply: RedisReply
        do {
            reply = try await core.client.send(RedisCommand("HGETALL", core.keys.job(id)), idempotent: true)
        } catch {
            throw JobQError(redis: error, queue: name, jobID: id)
        }
        try core.check(reply, script: nil, jobID: id)
        guard let flat = reply.array, !flat.isEmpty else { return nil }
        return Job(id: id, queue: name, flat: flat)
    }

    /// Counts per state and the paused flag, read atomically.
    public func counts() async throws(JobQError) -> JobCounts {
        try await core.call(core.countJobsCall())
    }

    public var isPaused: Bool {
        get async throws(JobQError) { try await counts().paused }
    }

    /// Every queue that was ever used on this Redis (`jobq:queues`), with its counts, by name.
    public static func queues(client: RedisClient, settings: QueueSettings = QueueSettings()) async throws(JobQError) -> [(name: String, counts: JobCounts)] {
        try await overview(client: client, settings: settings).compactMap { q in q.counts.map { (q.name, $0) } }
    }

    /// One queue of the overview: its counts, or why they cannot be read (a foreign value under
    /// its keys, a name jobq cannot use) with the keys at fault.
    public struct Summary: Sendable {
        public var name: String
        public var counts: JobCounts?
        /// Why the counts are missing; nil when they are there.
        public var problem: JobQError?
        /// The queue's keys holding a value jobq did not write ("key is a T (jobq keeps a U there)").
        public var brokenKeys: [String]
    }

    /// Every registered queue, in name order. A broken queue is listed with its problem and the
    /// others still are: one bad queue never hides the rest.
    /// - Throws: only when the registry itself cannot be read (Redis down, no permission).
    public static func overview(client: RedisClient, settings: QueueSettings = QueueSettings()) async throws(JobQError) -> [Summary] {
        let reply: RedisReply
        do {
            reply = try await client.send(RedisCommand("SMEMBERS", QueueKeys.queueRegistry), idempotent: true)
        } catch {
            throw JobQError(redis: error, queue: nil)
        }
        if let message = reply.errorMessage {
            let code: JobQError.Code = reply.errorCode == "NOPERM" ? .permissionDenied : reply.errorCode == "WRONGTYPE" ? .keyConflict : .internalError
            throw JobQError(code, detail: "cannot read the queue registry \(QueueKeys.queueRegistry): \(message.prefix(300))")
        }
        let names = (reply.array ?? []).compactMap(\.string).sorted()
        var out: [Summary] = []
        for name in names {
            let inspector: QueueInspector
            do {
                inspector = try QueueInspector(name: name, client: client, settings: settings)
            } catch {
                out.append(
                    Summary(
                        name: name, counts: nil,
                        problem: JobQError(
                            error.code, queue: name,
                            detail:
                                "the registry \(QueueKeys.queueRegistry) holds a name jobq cannot use (\(error.detail)); remove it with SREM \(QueueKeys.queueRegistry) <name>"
                        ), brokenKeys: []))
                continue
            }
            do {
                out.append(Summary(name: name, counts: try await inspector.counts(), problem: nil, brokenKeys: []))
            } catch {
                if error.code == .redis { throw error }
                let broken = (try? await inspector.core.keyConflicts()) ?? []
                out.append(Summary(name: name, counts: nil, problem: error, brokenKeys: broken))
            }
        }
        return out
    }

    /// Jobs in one state, in the order they will run (waiting, delayed, active) or newest first
    /// (finished), optionally filtered by name, creation time and group. Waiting jobs without a
    /// group come first, then each group's line (groups by name); with `group`, waiting jobs
    /// are that group's line in the order it runs.
    ///
    /// - Important: filtering reads records in pages of 500 and stops after scanning 100,000, so
    ///   a filtered listing of a huge queue may be partial.
    public func jobs(
        state: JobState, name jobName: String? = nil, createdAfter: Date? = nil, createdBefore: Date? = nil,
        group: String? = nil, limit: Int = 100, offset: Int = 0
    ) async throws(JobQError) -> [Job] {
        if let group { try QueueKeys.validate(group: group, queue: name) }
        let limit = max(0, min(limit, 10_000))
        let groupLine = state == .waiting ? group : nil
        let filtered = jobName != nil || createdAfter != nil || createdBefore != nil || (group != nil && groupLine == nil)
        var out: [Job] = []
        var skipped = 0
        var rank = filtered ? 0 : max(0, offset)
        let page = filtered ? 500 : max(1, limit)
        let newestFirst = state.isFinished
        var scanned = 0
        while out.count < limit, scanned < 100_000 {
            let ids: [String]
            if let groupLine {
                do {
                    let reply = try await core.client.send(
                        RedisCommand("ZRANGE", core.keys.groupWaiting(groupLine), rank, rank + page - 1), idempotent: true)
                    ids = (reply.array ?? []).compactMap(\.string)
                } catch {
                    throw JobQError(redis: error, queue: name)
                }
            } else {
                ids = try await idsInOrder(state, start: rank, count: page, newestFirst: newestFirst)
            }
            if ids.isEmpty { break }
            let replies: [RedisReply]
            do {
                replies = try await core.client.pipeline(ids.map { RedisCommand("HGETALL", core.keys.job($0)) }, idempotent: true)
            } catch {
                throw JobQError(redis: error, queue: name)
            }
            for (id, reply) in zip(ids, replies) {
                guard let flat = reply.array, let job = Job(id: id, queue: name, flat: flat) else { continue }
                if let jobName, job.name != jobName { continue }
                if let createdAfter, job.createdAt <= createdAfter { continue }
                if let createdBefore, job.createdAt >= createdBefore { continue }
                if let group, job.options.group != group { continue }
                if filtered, skipped < offset {
                    skipped += 1
                    continue
                }
                out.append(job)
                if out.count == limit { break }
            }
            rank += ids.count
            scanned += ids.count
            if ids.count < page { break }
        }
        return out
    }

    /// Ids of one state by rank. Waiting jobs in run order: priorities above 0, then the FIFO
    /// list (oldest first), then priorities below 0.
    private func idsInOrder(_ state: JobState, start: Int, count: Int, newestFirst: Bool) async throws(JobQError) -> [String] {
        func strings(_ reply: RedisReply) -> [String] { (reply.array ?? []).compactMap(\.string) }
        let groups = state == .waiting ? try await knownGroups(upTo: 100_000) : []
        do {
            guard state == .waiting else {
                let reply = try await core.client.send(
                    RedisCommand(newestFirst ? "ZREVRANGE" : "ZRANGE", core.keys.set(for: state), start, start + count - 1), idempotent: true)
                return strings(reply)
            }
            let zero = "2199023255552000"  // 1000 · 2⁴¹: scores below it are priorities above 0
            let sizes = try await core.client.pipeline(
                [
                    RedisCommand("ZCOUNT", core.keys.prioritized, "-inf", "(" + zero),
                    RedisCommand("LLEN", core.keys.wait),
                ], idempotent: true)
            let high = sizes[0].int ?? 0
            let listed = sizes[1].int ?? 0
            var ids: [String] = []
            var rank = start
            let end = start + count
            if rank < high {
                ids += strings(try await core.client.send(RedisCommand("ZRANGE", core.keys.prioritized, rank, min(end, high) - 1), idempotent: true))
                rank = min(end, high)
            }
            if rank < end, rank < high + listed {
                // List position p (0 = next to run) is index −1 − p.
                let a = rank - high
                let b = min(end, high + listed) - high - 1
                ids += strings(try await core.client.send(RedisCommand("LRANGE", core.keys.wait, -1 - b, -1 - a), idempotent: true)).reversed()
                rank = min(end, high + listed)
            }
            if rank < end {
                let a = rank - listed
                ids += strings(try await core.client.send(RedisCommand("ZRANGE", core.keys.prioritized, a, a + (end - rank) - 1), idempotent: true))
                rank = start + ids.count
            }
            if rank < end {
                // Then the groups' lines, groups by name.
                let ungrouped = (try await core.client.send(RedisCommand("ZCARD", core.keys.prioritized), idempotent: true).int ?? 0) + listed
                var sizes: [RedisReply] = []
                if !groups.isEmpty {
                    sizes = try await core.client.pipeline(groups.map { RedisCommand("ZCARD", core.keys.groupWaiting($0)) }, idempotent: true)
                }
                var first = ungrouped
                for (group, size) in zip(groups, sizes) where rank < end {
                    let n = size.int ?? 0
                    if rank < first + n {
                        let a = rank - first
                        let b = min(end - first, n) - 1
                        ids += strings(try await core.client.send(RedisCommand("ZRANGE", core.keys.groupWaiting(group), a, b), idempotent: true))
                        rank = first + b + 1
                    }
                    first += n
                }
            }
            return ids
        } catch {
            throw JobQError(redis: error, queue: name)
        }
    }

    // MARK: - Operator actions

    /// What removing one job did.
    public enum RemoveOutcome: Sendable, Hashable {
        case removed(from: JobState)
        /// Refused: it is running (cancel it instead).
        case isActive
        case notFound
    }

    /// Removes jobs that are not running; their `removed` event stays in the stream.
    public func remove(_ ids: [String]) async throws(JobQError) -> [RemoveOutcome] {
        var outcomes: [RemoveOutcome] = []
        outcomes.reserveCapacity(ids.count)
        var start = 0
        while start < ids.count {
            // Up to 200 ids per script call (one round trip each).
            let chunk = Array(ids[start..<min(start + core.idBatch, ids.count)])
            outcomes += try await core.call(core.removeJobsCall(chunk))
            start += chunk.count
        }
        return outcomes
    }

    /// Removes every job with this name that is not running; returns how many.
    public func removeJobs(named jobName: String) async throws(JobQError) -> Int {
        var removed = 0
        let sets: [(String, JobState)] = [
            (core.keys.wait, .waiting), (core.keys.prioritized, .waiting), (core.keys.delayed, .delayed),
            (core.keys.completed, .completed), (core.keys.failed, .failed), (core.keys.cancelled, .cancelled),
        ]
        var lines: [(String, JobState, String?)] = sets.map { ($0.0, $0.1, nil) }
        for group in try await knownGroups(upTo: 100_000) { lines.append((core.keys.groupWaiting(group), .waiting, group)) }
        for (key, state, group) in lines {
            var cursor = 0
            for _ in 0..<1_000_000 {
                let step = try await core.call(core.removeJobsNamedCall(jobName, in: key, state: state, group: group, cursor: cursor))
                removed += step.removed
                cursor = step.cursor
                if !step.more { break }
            }
        }
        return removed
    }

    /// Pauses the queue: running jobs finish, nothing new starts; adds go on. Returns false if
    /// it was paused already.
    @discardableResult
    public func pause() async throws(JobQError) -> Bool { try await setPaused(true) }

    /// Resumes a paused queue. Returns false if it was not paused.
    @discardableResult
    public func resume() async throws(JobQError) -> Bool { try await setPaused(false) }

    private func setPaused(_ paused: Bool) async throws(JobQError) -> Bool {
        try await core.call(core.setPausedCall(paused))
    }

    /// Deletes every waiting and delayed job (in calls of at most ``QueueSettings/batchSize``);
    /// returns how many. Running and finished jobs stay.
    /// - Parameter onBatch: called after each script call with (done in this call, remaining).
    public func purge(onBatch: (_ done: Int, _ remaining: Int) -> Void = { _, _ in }) async throws(JobQError) -> Int {
        try await repeatBatches(core.purgeJobsCall(), onBatch: onBatch)
    }

    /// Deletes finished records of `state` older than `olderThan`, at most `limit` of them
    /// (all when nil), oldest first; returns how many.
    /// - Parameter onBatch: called after each script call with (done in this call, remaining).
    public func clean(
        state: JobState, olderThan: Duration = .zero, limit: Int? = nil,
        onBatch: (_ done: Int, _ remaining: Int) -> Void = { _, _ in }
    ) async throws(JobQError) -> Int {
        guard state.isFinished else {
            throw JobQError(.invalidOptions, queue: name, detail: "clean takes completed, failed or cancelled (use purge for waiting and delayed jobs)")
        }
        var deleted = 0
        let cap = limit ?? Int.max
        while deleted < cap {
            let batch = min(core.settings.batchSize, cap - deleted)
            let step = try await core.call(core.cleanJobsCall(state, olderThan: olderThan, batch: batch))
            deleted += step.done
            onBatch(step.done, step.remaining)
            if step.remaining == 0 || step.done == 0 { break }
        }
        return deleted
    }

    /// What retrying one job did.
    public enum RetryOutcome: Sendable, Hashable {
        case retried
        /// Only failed and cancelled jobs can be retried.
        case wrongState
        case notFound
    }

    /// Sends failed or cancelled jobs back to waiting with attempts and stall count reset (the
    /// last error is kept as the previous error).
    public func retry(_ ids: [String]) async throws(JobQError) -> [RetryOutcome] {
        var outcomes: [RetryOutcome] = []
        var start = 0
        while start < ids.count {
            let chunk = Array(ids[start..<min(start + core.settings.batchSize, ids.count)])
            outcomes += try await core.call(core.retryJobsCall(chunk))
            start += chunk.count
        }
        return outcomes
    }

    /// Retries every failed job kept by retention; returns how many.
    public func retryAllFailed(onBatch: (_ done: Int, _ remaining: Int) -> Void = { _, _ in }) async throws(JobQError) -> Int {
        try await repeatBatches(core.retryAllFailedCall(), onBatch: onBatch)
    }

    /// Deletes the queue: every job and key. Needs a paused queue with no running job, unless
    /// `force`. Returns how many jobs were deleted.
    @discardableResult
    public func obliterate(force: Bool = false, onBatch: (_ done: Int, _ remaining: Int) -> Void = { _, _ in }) async throws(JobQError) -> Int {
        let deleted = try await repeatBatches(core.obliterateQueueCall(force: force), onBatch: onBatch)
        do {
            _ = try await core.client.send(RedisCommand("SREM", QueueKeys.queueRegistry, name), idempotent: true)
        } catch {
            throw JobQError(redis: error, queue: name)
        }
        return deleted
    }

    /// Sets the queue's retention: how many finished records of each kind are kept (`docs/job-lifecycle.md`).
    /// Takes effect at the next finishes (each trims at most 10 beyond the limit); `clean` trims
    /// at once.
    public func setRetention(completed: Int? = nil, failed: Int? = nil, cancelled: Int? = nil) async throws(JobQError) {
        var command = RedisCommand("HSET", core.keys.meta)
        for (field, value) in [(QueueMetaField.keepCompleted, completed), (.keepFailed, failed), (.keepCancelled, cancelled)] {
            guard let value else { continue }
            guard value >= 0 else { throw JobQError(.invalidOptions, queue: name, detail: "retention limits are 0 or more") }
            command.append(field.rawValue)
            command.append(value)
        }
        guard command.argumentCount > 2 else { return }
        let reply: RedisReply
        do {
            reply = try await core.client.send(command, idempotent: true)
        } catch {
            throw JobQError(redis: error, queue: name)
        }
        try core.check(reply, script: nil, jobID: nil)
    }

    /// The queue's retention limits (completed, failed, cancelled).
    public func retention() async throws(JobQError) -> (completed: Int, failed: Int, cancelled: Int) {
        let reply: RedisReply
        do {
            reply = try await core.client.send(
                RedisCommand(
                    "HMGET", core.keys.meta, QueueMetaField.keepCompleted.rawValue, QueueMetaField.keepFailed.rawValue, QueueMetaField.keepCancelled.rawValue),
                idempotent: true)
        } catch {
            throw JobQError(redis: error, queue: name)
        }
        let v = reply.array ?? []
        func value(_ i: Int, _ fallback: Int) -> Int { i < v.count ? v[i].int ?? fallback : fallback }
        return (value(0, 10), value(1, 5), value(2, 10))
    }

    /// Calls a bounded script until it reports nothing remaining; sums what each call did.
    /// A call that does nothing while work remains (a refusal) stops the loop.
    private func repeatBatches(_ call: ScriptCall<QueueCore.BatchStep>, onBatch: (_ done: Int, _ remaining: Int) -> Void) async throws(JobQError) -> Int {
        var total = 0
        for _ in 0..<10_000_000 {
            let step = try await core.call(call)
            total += step.done
            onBatch(step.done, step.remaining)
            if step.remaining == 0 || step.done == 0 { break }
        }
        return total
    }
}
