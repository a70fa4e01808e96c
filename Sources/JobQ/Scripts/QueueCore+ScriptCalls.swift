import Foundation

/// One builder per script: the KEYS (from ``QueueKeys``), the ARGV in the order the script's
/// header lists them, and the decoding of its reply. Nothing else in jobq assembles a script's
/// arguments; `ScriptContractTests` calls every builder and checks it against the header.
extension QueueCore {
    // MARK: Producer

    /// `addJob-9`. `job` is validated already; its id is made by the caller before sending.
    /// `extraFields` are more record fields (a schedule's id for a triggered run).
    func addJobCall(id: String, job: JobQueue.NewJob, extraFields: [(String, String)] = []) -> ScriptCall<JobQueue.AddResult> {
        let options = job.options
        let arguments: [any RedisArgument] =
            [
                id,
                options.delay.map { Int64($0.milliseconds) } ?? Int64(0),
                options.runAt.map { Int64(($0.timeIntervalSince1970 * 1000).rounded()) } ?? Int64(0),
                options.priority.value,
                maxLen,
            ] + Self.recordFields(job, extraFields: extraFields)
        let script = scripts.addJob
        let queue = name
        return ScriptCall(script, keys: addKeys(id), arguments: arguments, jobID: id, idempotent: true) { reply throws(JobQError) in
            guard let items = reply.array, items.count == 2 else { throw QueueCore.unexpected(reply, script, queue: queue, jobID: id) }
            return try Self.addOutcome(items[0], items[1], id: id, script: script, queue: queue)
        }
    }

    /// The record fields an add stores, as name, value pairs: name, payload (and its
    /// encoding), then the options'.
    static func recordFields(_ job: JobQueue.NewJob, extraFields: [(String, String)] = []) -> [any RedisArgument] {
        var out: [any RedisArgument] = [JobField.name.rawValue, job.name, JobField.payload.rawValue, job.payload.bytes]
        if job.payload.encoding == .bytes {
            out.append(JobField.encoding.rawValue)
            out.append(JobField.bytesEncoding)
        }
        for (field, value) in job.options.storedFields + extraFields {
            out.append(field)
            out.append(value)
        }
        return out
    }

    /// One add's code and value (addJob-9's reply, or one job's two items of addJobs-9's).
    private static func addOutcome(_ code: RedisReply, _ value: RedisReply, id: String, script: RedisScript, queue: String) throws(JobQError)
        -> JobQueue.AddResult
    {
        if code.int == ScriptCode.queueFull.rawValue {
            let held = value.int ?? 0
            throw JobQError(
                .queueFull, queue: queue, jobID: id,
                detail: "the queue holds \(held) waiting and delayed jobs, its maximum or more; nothing was written")
        }
        guard let flag = code.int, flag == ScriptStatus.applied || flag == ScriptStatus.nothing,
            let state = value.string.flatMap(JobState.init(rawValue:))
        else {
            throw QueueCore.unexpected(.array([code, value]), script, queue: queue, jobID: id)
        }
        return JobQueue.AddResult(id: id, created: flag == ScriptStatus.applied, state: state)
    }

    /// The jobs `addBulk` puts in one `addJobs-9` call (the script takes up to 1,000): as fast
    /// per job as 1,000 (`jobq-bench enqueue`), and a tenth of the time Redis runs one call
    /// without serving other clients.
    static let jobsPerAdd = 100

    /// `addJobs-9`: up to ``jobsPerAdd`` jobs, each with its id made already; one result per
    /// job, in order. A job whose write failed gets Redis's error (``check(_:script:jobID:)``).
    func addJobsCall(_ jobs: [(id: String, job: JobQueue.NewJob)]) -> ScriptCall<[Result<JobQueue.AddResult, JobQError>]> {
        var arguments: [any RedisArgument] = [maxLen, jobs.count]
        for (id, job) in jobs {
            let options = job.options
            let fields = Self.recordFields(job)
            arguments +=
                [
                    id,
                    options.delay.map { Int64($0.milliseconds) } ?? Int64(0),
                    options.runAt.map { Int64(($0.timeIntervalSince1970 * 1000).rounded()) } ?? Int64(0),
                    options.priority.value,
                    fields.count / 2,
                ] as [any RedisArgument]
            arguments += fields
        }
        let script = scripts.addJobs
        let queue = name
        let ids = jobs.map(\.id)
        return ScriptCall(script, keys: addJobsKeys, arguments: arguments, idempotent: true) { [self] reply throws(JobQError) in
            guard let items = reply.array, items.count == 2 * ids.count else { throw QueueCore.unexpected(reply, script, queue: queue) }
            var out: [Result<JobQueue.AddResult, JobQError>] = []
            out.reserveCapacity(ids.count)
            for (i, id) in ids.enumerated() {
                let code = items[2 * i]
                let value = items[2 * i + 1]
                if code.int == ScriptStatus.writeFailed {
                    out.append(
                        Result { () throws(JobQError) in
                            try check(.error(value.string ?? "ERR addJobs: a write failed"), script: script, jobID: id)
                            throw QueueCore.unexpected(reply, script, queue: queue, jobID: id)
                        })
                } else {
                    out.append(Result { () throws(JobQError) in try Self.addOutcome(code, value, id: id, script: script, queue: queue) })
                }
            }
            return out
        }
    }

    /// `cancelJobs-9`: up to ``idBatch`` ids; one outcome per id, in order.
    func cancelJobsCall(_ ids: [String], reason: String, requestedBy by: String, sharded: Bool) -> ScriptCall<[JobQueue.CancelOutcome]> {
        let arguments: [any RedisArgument] =
            [String(reason.prefix(1024)), String(by.prefix(256)), maxLen, sharded ? "1" : "0"]
            + ids.map { $0 as any RedisArgument }
        let script = scripts.cancelJobs
        let queue = name
        return ScriptCall(script, keys: cancelKeys, arguments: arguments, jobID: ids.count == 1 ? ids[0] : nil, idempotent: true) { reply throws(JobQError) in
            guard let items = reply.array, items.count == 2 * ids.count else { throw QueueCore.unexpected(reply, script, queue: queue) }
            var outcomes: [JobQueue.CancelOutcome] = []
            for i in ids.indices {
                let code = items[2 * i].int
                let extra = items[2 * i + 1]
                switch code {
                case ScriptStatus.cancelled: outcomes.append(.cancelled)
                case ScriptStatus.cancelRequested: outcomes.append(.cancelRequested(listeners: extra.int ?? 0))
                case ScriptStatus.alreadyFinished:
                    guard let state = extra.string.flatMap(JobState.init(rawValue:)) else {
                        throw QueueCore.unexpected(reply, script, queue: queue, jobID: ids[i])
                    }
                    outcomes.append(.alreadyFinished(state))
                case ScriptCode.notFound.rawValue: outcomes.append(.notFound)
                default: throw QueueCore.unexpected(reply, script, queue: queue, jobID: ids[i])
                }
            }
            return outcomes
        }
    }

    // MARK: Worker

    /// `takeJob-11`: the next job under a new lease token.
    func takeJobCall(lease: Lease) -> ScriptCall<Take> {
        let script = scripts.takeJob
        let queue = name
        return ScriptCall(script, keys: takeKeys, arguments: [lease.token, lease.length.milliseconds, lease.workerID, maxLen, 100], idempotent: false) {
            reply throws(JobQError) in
            try QueueCore.decodeTake(reply, script: script, queue: queue)
        }
    }

    /// `finishJob-15`: ends a run (`outcome`: completed, failed, unrecoverable, timeout,
    /// cancelled, shutdown); with `next`, takes the next job under that lease in the same call.
    func finishJobCall(_ id: String, token: String, outcome: String, value: [UInt8], reason: String, retryDelayMs: Int64, next: Lease?) -> ScriptCall<Finish> {
        let arguments: [any RedisArgument] = [
            id, token, outcome, value, reason, retryDelayMs, maxLen, next == nil ? "0" : "1",
            next?.token ?? "", next?.length.milliseconds ?? 0, next?.workerID ?? "", settings.eventExcerptBytes,
        ]
        let script = scripts.finishJob
        let take = scripts.takeJob
        let queue = name
        return ScriptCall(script, keys: finishKeys(id), arguments: arguments, jobID: id, idempotent: true) { reply throws(JobQError) in
            guard let items = reply.array, let code = items.first?.int else { throw QueueCore.unexpected(reply, script, queue: queue, jobID: id) }
            switch code {
            case ScriptStatus.applied:
                guard items.count == 3, let state = items[1].string.flatMap(JobState.init(rawValue:)) else {
                    throw QueueCore.unexpected(reply, script, queue: queue, jobID: id)
                }
                let nextTake: Take? = (items[2].array?.isEmpty ?? true) ? nil : try QueueCore.decodeTake(items[2], script: take, queue: queue)
                return .applied(state, next: nextTake)
            case ScriptCode.okAlready.rawValue:
                let state = items.count > 1 ? items[1].string.flatMap(JobState.init(rawValue:)) : nil
                return .alreadyApplied(state ?? .waiting)
            case ScriptCode.leaseLost.rawValue: return .leaseLost
            case ScriptCode.notFound.rawValue: return .notFound
            default: throw QueueCore.unexpected(reply, script, queue: queue, jobID: id)
            }
        }
    }

    /// `extendLeases-2`: renews up to 1,000 runs; answers with the lease tokens of the runs
    /// lost and of those whose job has a cancel request.
    func extendLeasesCall(_ runs: [(id: String, token: String)], length: Duration) -> ScriptCall<(renewed: Int, lost: [String], cancelRequested: [String])> {
        var arguments: [any RedisArgument] = [length.milliseconds]
        for run in runs.prefix(1000) {
            arguments.append(run.id)
            arguments.append(run.token)
        }
        let script = scripts.extendLeases
        let queue = name
        return ScriptCall(script, keys: extendKeys, arguments: arguments, idempotent: true) { reply throws(JobQError) in
            guard let items = reply.array, items.count == 3, let renewed = items[0].int,
                let lost = items[1].array, let cancel = items[2].array
            else { throw QueueCore.unexpected(reply, script, queue: queue) }
            return (renewed, lost.compactMap(\.string), cancel.compactMap(\.string))
        }
    }

    /// `recoverStalled-12`: the reaper. With `lockMs` > 0 it runs only while `holder` holds the
    /// queue's reaper lock; `remaining` is -1 when another worker holds it.
    func recoverStalledCall(batch: Int, holder: String, lockMs: Int64) -> ScriptCall<(requeued: Int, failed: Int, cancelled: Int, remaining: Int)> {
        let script = scripts.recoverStalled
        let queue = name
        return ScriptCall(script, keys: recoverKeys, arguments: [maxLen, min(batch, 1000), holder, lockMs], idempotent: true) { reply throws(JobQError) in
            guard let v = reply.array?.compactMap(\.int), v.count == 4 else { throw QueueCore.unexpected(reply, script, queue: queue) }
            return (v[0], v[1], v[2], v[3])
        }
    }

    /// `setProgress-2` (owner only). Answers whether a cancel was requested.
    func setProgressCall(_ id: String, token: String, percent: Double, message: String) -> ScriptCall<Bool> {
        let clamped = min(100, max(0, percent))
        let arguments: [any RedisArgument] = [id, token, String(format: "%.1f", clamped), String(message.prefix(1024)), maxLen]
        let script = scripts.setProgress
        let queue = name
        return ScriptCall(script, keys: progressKeys(id), arguments: arguments, jobID: id, idempotent: true) { reply throws(JobQError) in
            try QueueCore.ownerReply(reply, script, queue: queue, id: id)
        }
    }

    /// `saveCheckpoint-1` (owner only). Answers whether a cancel was requested.
    func saveCheckpointCall(_ id: String, token: String, bytes: [UInt8]) -> ScriptCall<Bool> {
        let script = scripts.saveCheckpoint
        let queue = name
        return ScriptCall(script, keys: checkpointKeys(id), arguments: [token, bytes], jobID: id, idempotent: true) { reply throws(JobQError) in
            try QueueCore.ownerReply(reply, script, queue: queue, id: id)
        }
    }

    // MARK: Operator

    /// `countJobs-10`: one consistent reading of the counts per state, the paused flag and
    /// the flow limits with what they hold back now.
    func countJobsCall() -> ScriptCall<JobCounts> {
        let script = scripts.countJobs
        let queue = name
        return ScriptCall(script, keys: countKeys, arguments: [], idempotent: true) { reply throws(JobQError) in
            guard let all = reply.array, all.count == 22, let limitedBy = all[13].string else { throw QueueCore.unexpected(reply, script, queue: queue) }
            let items = all.compactMap(\.int)
            guard items.count == 21 else { throw QueueCore.unexpected(reply, script, queue: queue) }
            // items skips limitedBy: from index 13 on, item i is reply item i + 1.
            func set(_ i: Int) -> Int? { items[i] >= 0 ? items[i] : nil }
            var counts = JobCounts()
            (counts.waiting, counts.delayed, counts.active) = (items[0], items[1], items[2])
            (counts.completed, counts.failed, counts.cancelled) = (items[3], items[4], items[5])
            counts.paused = items[6] == 1
            var limits = QueueLimits(concurrency: set(7), maxWaiting: set(11), groupConcurrency: set(14))
            if let n = set(8), let w = set(9) { limits.rate = RateLimit(n, per: .milliseconds(w)) }
            if let n = set(15), let w = set(16) { limits.groupRate = RateLimit(n, per: .milliseconds(w)) }
            (counts.groups, counts.groupsReady, counts.groupsHeld) = (items[17], items[18], items[19])
            if let t = set(10) { limits.throttledUntil = Date(timeIntervalSince1970: Double(t) / 1000) }
            counts.limits = limits
            counts.startsInWindow = items[12]
            if !limitedBy.isEmpty {
                counts.limitedBy = limitedBy
                counts.waitingForLimit = limitedBy == "group" ? items[20] : counts.waiting
                counts.limitWaitMs = items[13] >= 0 ? items[13] : nil
            } else {
                counts.waitingForLimit = items[20]
            }
            return counts
        }
    }

    /// `setLimits-6`: clears every flow limit first when `clearAll`, then sets (or, with an
    /// empty value, clears) each field given.
    func setLimitsCall(_ fields: [(QueueMetaField, String)], clearAll: Bool) -> ScriptCall<Void> {
        var arguments: [any RedisArgument] = [maxLen, clearAll ? "1" : "0"]
        for (field, value) in fields {
            arguments.append(field.rawValue)
            arguments.append(value)
        }
        let script = scripts.setLimits
        let queue = name
        return ScriptCall(script, keys: limitsKeys, arguments: arguments, idempotent: true) { reply throws(JobQError) in
            guard QueueCore.status(reply) == ScriptStatus.applied else { throw QueueCore.unexpected(reply, script, queue: queue) }
        }
    }

    /// `setGroup-4`: one group's settings; clears its limits and throttle first when
    /// `clearAll`. Answers whether it was paused before and is now.
    func setGroupCall(_ group: String, fields: [(QueueMetaField, String)], clearAll: Bool) -> ScriptCall<(wasPaused: Bool, isPaused: Bool)> {
        var arguments: [any RedisArgument] = [maxLen, group, clearAll ? "1" : "0"]
        for (field, value) in fields {
            arguments.append(field.rawValue)
            arguments.append(value)
        }
        let script = scripts.setGroup
        let queue = name
        return ScriptCall(script, keys: groupSettingsKeys, arguments: arguments, idempotent: true) { reply throws(JobQError) in
            guard let items = reply.array?.compactMap(\.int), items.count == 3, items[0] == ScriptStatus.applied else {
                throw QueueCore.unexpected(reply, script, queue: queue)
            }
            return (items[1] == 1, items[2] == 1)
        }
    }

    /// `countGroups-2`: counts and settings of up to 1,000 groups, in order.
    func countGroupsCall(_ groups: [String]) -> ScriptCall<[GroupCounts]> {
        let script = scripts.countGroups
        let queue = name
        return ScriptCall(script, keys: countGroupsKeys, arguments: groups.map { $0 as any RedisArgument }, idempotent: true) {
            reply throws(JobQError) in
            guard let items = reply.array, items.count == 11 * groups.count else { throw QueueCore.unexpected(reply, script, queue: queue) }
            var out: [GroupCounts] = []
            for (i, group) in groups.enumerated() {
                let row = items[(11 * i)..<(11 * i + 11)].map { $0 }
                let n = row.map { $0.int ?? -1 }
                guard let status = row[9].string.flatMap(GroupCounts.Status.init(rawValue:)) else {
                    throw QueueCore.unexpected(reply, script, queue: queue)
                }
                var counts = GroupCounts(group: group)
                (counts.waiting, counts.active, counts.paused) = (n[0], n[1], n[2] == 1)
                counts.concurrency = n[3] >= 0 ? n[3] : nil
                if n[4] >= 0, n[5] >= 0 { counts.rate = RateLimit(n[4], per: .milliseconds(n[5])) }
                counts.hasOwnLimits = n[6] == 1
                if n[7] >= 0 { counts.throttledUntil = Date(timeIntervalSince1970: Double(n[7]) / 1000) }
                counts.startsInWindow = max(0, n[8])
                counts.status = status
                counts.heldForMs = n[10] >= 0 ? n[10] : nil
                out.append(counts)
            }
            return out
        }
    }

    /// `removeJobs-9`: up to ``idBatch`` ids that are not running; one outcome per id.
    func removeJobsCall(_ ids: [String]) -> ScriptCall<[QueueInspector.RemoveOutcome]> {
        let script = scripts.removeJobs
        let queue = name
        return ScriptCall(
            script, keys: removeKeys, arguments: [maxLen] + ids.map { $0 as any RedisArgument },
            jobID: ids.count == 1 ? ids[0] : nil, idempotent: true
        ) { reply throws(JobQError) in
            guard let items = reply.array, items.count == 2 * ids.count else { throw QueueCore.unexpected(reply, script, queue: queue) }
            var outcomes: [QueueInspector.RemoveOutcome] = []
            for i in ids.indices {
                switch items[2 * i].int {
                case ScriptStatus.applied:
                    guard let state = items[2 * i + 1].string.flatMap(JobState.init(rawValue:)) else {
                        throw QueueCore.unexpected(reply, script, queue: queue, jobID: ids[i])
                    }
                    outcomes.append(.removed(from: state))
                case ScriptCode.isActive.rawValue: outcomes.append(.isActive)
                case ScriptCode.notFound.rawValue: outcomes.append(.notFound)
                default: throw QueueCore.unexpected(reply, script, queue: queue, jobID: ids[i])
                }
            }
            return outcomes
        }
    }

    /// `removeJobsNamed-4`: one bounded scan of the set `key` (holding `state` jobs; a group's
    /// line with `group`) from `cursor`; answers how many went, the next cursor and whether
    /// more remain.
    func removeJobsNamedCall(
        _ jobName: String, in key: String, state: JobState, group: String? = nil, cursor: Int
    ) -> ScriptCall<(removed: Int, cursor: Int, more: Bool)> {
        let script = scripts.removeJobsNamed
        let queue = name
        return ScriptCall(
            script, keys: removeNamedKeys(key), arguments: [jobName, cursor, settings.batchSize, maxLen, state.rawValue, group ?? ""],
            idempotent: true
        ) {
            reply throws(JobQError) in
            guard let items = reply.array?.compactMap(\.int), items.count == 3 else { throw QueueCore.unexpected(reply, script, queue: queue) }
            return (items[0], items[1], items[2] != 0)
        }
    }

    /// `setPaused-3`: answers whether the flag changed.
    func setPausedCall(_ paused: Bool) -> ScriptCall<Bool> {
        let script = scripts.setPaused
        let queue = name
        return ScriptCall(script, keys: pauseKeys, arguments: [paused ? "1" : "0", maxLen], idempotent: true) { reply throws(JobQError) in
            guard let code = QueueCore.status(reply) else { throw QueueCore.unexpected(reply, script, queue: queue) }
            return code == ScriptStatus.applied
        }
    }

    /// `purgeJobs-6`: one batch of waiting and delayed jobs deleted.
    func purgeJobsCall() -> ScriptCall<BatchStep> {
        batchCall(scripts.purgeJobs, keys: purgeKeys, arguments: [settings.batchSize, maxLen])
    }

    /// `cleanJobs-3`: one batch of `state` records older than `olderThan`, at most `batch`.
    func cleanJobsCall(_ state: JobState, olderThan: Duration, batch: Int) -> ScriptCall<BatchStep> {
        batchCall(scripts.cleanJobs, keys: cleanKeys(state), arguments: [Int64(olderThan.milliseconds), batch, maxLen, state.rawValue])
    }

    /// `retryJobs-9`, ids mode: one outcome per id.
    func retryJobsCall(_ ids: [String]) -> ScriptCall<[QueueInspector.RetryOutcome]> {
        let script = scripts.retryJobs
        let queue = name
        return ScriptCall(script, keys: retryKeys, arguments: [maxLen, "ids", settings.batchSize] + ids.map { $0 as any RedisArgument }, idempotent: true) {
            reply throws(JobQError) in
            guard let codes = reply.array?.compactMap(\.int), codes.count == ids.count else { throw QueueCore.unexpected(reply, script, queue: queue) }
            return codes.map { code in
                switch code {
                case ScriptStatus.applied: .retried
                case ScriptCode.wrongState.rawValue: .wrongState
                default: .notFound
                }
            }
        }
    }

    /// `retryJobs-9`, failed mode: one batch of every failed record.
    func retryAllFailedCall() -> ScriptCall<BatchStep> {
        batchCall(scripts.retryJobs, keys: retryKeys, arguments: [maxLen, "failed", settings.batchSize])
    }

    /// `obliterateQueue-16`: one batch of the queue deleted; refused (`NOT_PAUSED`,
    /// `HAS_ACTIVE`) without `force`.
    func obliterateQueueCall(force: Bool) -> ScriptCall<BatchStep> {
        batchCall(scripts.obliterateQueue, keys: obliterateKeys, arguments: [force ? "1" : "0", settings.batchSize])
    }

    /// `readEvents-1`: entries after `position`, with what a reader needs to tell a gap.
    func readEventsCall(after position: String, count: Int) -> ScriptCall<EventsPage> {
        let script = scripts.readEvents
        let queue = name
        return ScriptCall(script, keys: readEventsKeys, arguments: [position, max(count, 1)], idempotent: true) { reply throws(JobQError) in
            guard let items = reply.array, items.count == 5, let added = items[0].int, let length = items[1].int,
                let first = items[2].string.flatMap(StreamID.init), let last = items[3].string.flatMap(StreamID.init),
                let rows = items[4].array
            else {
                throw QueueCore.unexpected(reply, script, queue: queue)
            }
            var page = EventsPage(entriesAdded: added, length: length, first: first, lastGenerated: last)
            var i = 0
            while i + 1 < rows.count {
                if let id = rows[i].string.flatMap(StreamID.init), let flat = rows[i + 1].array { page.entries.append((id, flat)) }
                i += 2
            }
            return page
        }
    }

    /// One step of a bounded bulk script: done in this call, and what remains. A refusal code
    /// becomes its error.
    struct BatchStep: Sendable {
        var done: Int
        var remaining: Int
    }

    private func batchCall(_ script: RedisScript, keys: [String], arguments: [any RedisArgument]) -> ScriptCall<BatchStep> {
        let queue = name
        return ScriptCall(script, keys: keys, arguments: arguments, idempotent: true) { reply throws(JobQError) in
            guard let items = reply.array?.compactMap(\.int), let first = items.first else { throw QueueCore.unexpected(reply, script, queue: queue) }
            if first < 0, let code = ScriptCode(rawValue: first) { throw code.error(queue: queue, jobID: nil) }
            guard items.count == 2 else { throw QueueCore.unexpected(reply, script, queue: queue) }
            return BatchStep(done: items[0], remaining: items[1])
        }
    }

    // MARK: Decoding shared by several calls

    static func decodeTake(_ reply: RedisReply, script: RedisScript, queue: String) throws(JobQError) -> Take {
        guard let items = reply.array, let code = items.first?.int else { throw unexpected(reply, script, queue: queue) }
        func due(_ i: Int) -> Int? {
            guard i < items.count, let v = items[i].int, v >= 0 else { return nil }
            return v
        }
        switch code {
        case ScriptStatus.applied:
            guard items.count == 4, let id = items[1].string, let flat = items[3].array,
                let job = Job(id: id, queue: queue, flat: flat)
            else { throw unexpected(reply, script, queue: queue) }
            return .job(job, nextDue: due(2))
        case ScriptStatus.nothing:
            return .empty(nextDue: due(1))
        case ScriptCode.paused.rawValue:
            return .paused
        case ScriptCode.limited.rawValue:
            guard items.count == 3, let wait = items[1].int, let limit = items[2].string else { throw unexpected(reply, script, queue: queue) }
            return .limited(retryAfterMs: wait >= 0 ? wait : nil, limit: limit)
        default:
            throw unexpected(reply, script, queue: queue)
        }
    }

    static func ownerReply(_ reply: RedisReply, _ script: RedisScript, queue: String, id: String) throws(JobQError) -> Bool {
        guard let items = reply.array?.compactMap(\.int), let code = items.first else { throw unexpected(reply, script, queue: queue, jobID: id) }
        if code == ScriptStatus.applied { return items.count > 1 && items[1] == 1 }
        if let known = ScriptCode(rawValue: code) { throw known.error(queue: queue, jobID: id) }
        throw unexpected(reply, script, queue: queue, jobID: id)
    }

    static func unexpected(_ reply: RedisReply, _ script: RedisScript, queue: String, jobID: String? = nil) -> JobQError {
        JobQError(.internalError, queue: queue, jobID: jobID, detail: "\(script.name) answered \(reply)")
    }
}

/// An operator's standing requests in a worker's record, each `<seq>:<value>` (nil: none).
typealias HeartbeatRequests = (wantPaused: String?, wantConcurrency: String?)

/// What one `readEvents-1` call saw.
struct EventsPage: Sendable {
    var entriesAdded = 0
    var length = 0
    var first = StreamID.zero
    var lastGenerated = StreamID.zero
    var entries: [(StreamID, [RedisReply])] = []
}

extension ScriptCall {
    /// `registerWorker-1`: the worker in the registry of live workers until `expiryMs` from now
    /// (Redis clock); answers the Redis time.
    static func registerWorker(_ scripts: QueueScripts, workerID: String, expiryMs: Int64) -> ScriptCall<Int> {
        let script = scripts.registerWorker
        return ScriptCall<Int>(script, keys: [QueueKeys.workerRegistry], arguments: [workerID, expiryMs], idempotent: true) { reply throws(JobQError) in
            guard let now = reply.int else { throw QueueCore.unexpected(reply, script, queue: "") }
            return now
        }
    }

    /// `controlWorker-1`: stores an operator's request in a live worker's record and nudges it;
    /// answers how many heard the nudge, nil when no such worker lives.
    static func controlWorker(_ scripts: QueueScripts, workerID: String, field: HeartbeatField, value: String) -> ScriptCall<Int?> {
        let script = scripts.controlWorker
        return ScriptCall<Int?>(
            script, keys: [QueueKeys.heartbeat(of: workerID)], arguments: [field.rawValue, value, workerID, QueueKeys.controlChannel], idempotent: true
        ) { reply throws(JobQError) in
            guard let items = reply.array?.compactMap(\.int), let code = items.first else { throw QueueCore.unexpected(reply, script, queue: "") }
            if code == ScriptCode.notFound.rawValue { return nil }
            guard code == ScriptStatus.applied, items.count == 2 else { throw QueueCore.unexpected(reply, script, queue: "") }
            return items[1]
        }
    }

    /// `recordHeartbeat-1`: the worker's heartbeat fields, expiring after `expiryMs`; answers
    /// the operator's standing requests (`<seq>:<value>` or nil), paused first.
    static func recordHeartbeat(
        _ scripts: QueueScripts, workerID: String, expiryMs: Int64, fields: [(HeartbeatField, any RedisArgument)]
    ) -> ScriptCall<HeartbeatRequests> {
        var arguments: [any RedisArgument] = [expiryMs]
        for (field, value) in fields {
            arguments.append(field.rawValue)
            arguments.append(value)
        }
        let script = scripts.recordHeartbeat
        return ScriptCall<HeartbeatRequests>(
            script, keys: [QueueKeys.heartbeat(of: workerID)], arguments: arguments, idempotent: true
        ) { reply throws(JobQError) in
            guard let items = reply.array, items.count == 2 else { throw QueueCore.unexpected(reply, script, queue: "") }
            return (items[0].string, items[1].string)
        }
    }
}
