import Foundation

/// The owner-side calls a worker makes for the runs it holds (`docs/job-lifecycle.md`): take, finish, renew,
/// progress, checkpoint — each one script, each checking the lease token — and the maintenance
/// calls (recover stalled jobs, promote delayed ones).
extension QueueCore {
    /// What a take found.
    enum Take: Sendable {
        /// A job, now active under the caller's lease token. `nextDue`: ms until the earliest
        /// delayed job is due (nil: none delayed).
        case job(Job, nextDue: Int?)
        /// Nothing runnable.
        case empty(nextDue: Int?)
        case paused
    }

    /// How a run ended, as the worker reports it.
    enum RunEnd: Sendable {
        case completed(result: [UInt8])
        /// A failed run; retried after `retryDelayMs` while attempts remain (nil: never retried).
        case failed(reason: String, details: String, retryDelayMs: Int64?)
        /// `UnrecoverableError`: failed, never retried.
        case unrecoverable(reason: String, details: String)
        case timeout(details: String, retryDelayMs: Int64?)
        case cancelled(reason: String)
        /// Graceful shutdown: back to waiting, no attempt used.
        case shutdown
    }

    /// What finishing did.
    enum Finish: Sendable {
        /// Applied: the job is now in `state`; `next` is the next job when one was asked for.
        case applied(JobState, next: Take?)
        /// This run's outcome had been applied already (a repeated call).
        case alreadyApplied(JobState)
        /// The job is not active with this token (recovered, cancelled): nothing changed.
        case leaseLost
        case notFound
    }

    struct Lease: Sendable {
        var token: String
        var workerID: String
        var length: Duration
    }

    func take(lease: Lease) async throws(JobQError) -> Take {
        let reply = try await run(scripts.takeJob, keys: takeKeys,
                                  arguments: [lease.token, lease.length.milliseconds, lease.workerID, maxLen, 100])
        return try decodeTake(reply)
    }

    func decodeTake(_ reply: RedisReply) throws(JobQError) -> Take {
        guard let items = reply.array, let code = items.first?.int else { throw unexpected(reply, scripts.takeJob) }
        func due(_ i: Int) -> Int? {
            guard i < items.count, let v = items[i].int, v >= 0 else { return nil }
            return v
        }
        switch code {
        case 1:
            guard items.count == 4, let id = items[1].string, let flat = items[3].array,
                  let job = Job(id: id, queue: name, flat: flat) else { throw unexpected(reply, scripts.takeJob) }
            return .job(job, nextDue: due(2))
        case 0:
            return .empty(nextDue: due(1))
        case ScriptCode.paused.rawValue:
            return .paused
        default:
            throw unexpected(reply, scripts.takeJob)
        }
    }

    /// Ends a run. With `next`, takes the next job under that lease in the same call.
    func finish(_ id: String, token: String, end: RunEnd, next: Lease?) async throws(JobQError) -> Finish {
        var value: [UInt8] = []
        var reason = ""
        var retryDelay: Int64 = -1
        let outcome: String
        switch end {
        case .completed(let result):
            outcome = "completed"
            value = result
        case .failed(let r, let details, let delay):
            outcome = "failed"
            (reason, value, retryDelay) = (r, Array(details.utf8), delay ?? -1)
        case .unrecoverable(let r, let details):
            outcome = "unrecoverable"
            (reason, value) = (r, Array(details.utf8))
        case .timeout(let details, let delay):
            outcome = "timeout"
            (reason, value, retryDelay) = ("timeout", Array(details.utf8), delay ?? -1)
        case .cancelled(let r):
            outcome = "cancelled"
            reason = r
        case .shutdown:
            outcome = "shutdown"
        }
        if outcome == "completed", value.count > settings.maxResultBytes {
            // Oversized results fail the run rather than being stored (`docs/data-model.md`).
            return try await finish(id, token: token, end: .unrecoverable(reason: "resultTooLarge",
                details: "the result is \(value.count) bytes; the limit is \(settings.maxResultBytes) bytes"), next: next)
        }
        if outcome != "completed", value.count > settings.maxErrorBytes {
            value = Array(value.prefix(settings.maxErrorBytes - 40)) + Array(" … [cut at \(settings.maxErrorBytes) bytes]".utf8)
        }
        let arguments: [any RedisArgument] = [
            id, token, outcome, value, reason, retryDelay, maxLen, next == nil ? "0" : "1",
            next?.token ?? "", next?.length.milliseconds ?? 0, next?.workerID ?? "", settings.eventExcerptBytes,
        ]
        let reply = try await run(scripts.finishJob, keys: finishKeys(id), arguments: arguments, jobID: id, idempotent: true)
        guard let items = reply.array, let code = items.first?.int else { throw unexpected(reply, scripts.finishJob, jobID: id) }
        switch code {
        case 1:
            guard items.count == 3, let state = items[1].string.flatMap(JobState.init(rawValue:)) else { throw unexpected(reply, scripts.finishJob, jobID: id) }
            let nextTake: Take? = (items[2].array?.isEmpty ?? true) ? nil : try decodeTake(items[2])
            return .applied(state, next: nextTake)
        case ScriptCode.okAlready.rawValue:
            let state = items.count > 1 ? items[1].string.flatMap(JobState.init(rawValue:)) : nil
            return .alreadyApplied(state ?? .waiting)
        case ScriptCode.leaseLost.rawValue: return .leaseLost
        case ScriptCode.notFound.rawValue: return .notFound
        default: throw unexpected(reply, scripts.finishJob, jobID: id)
        }
    }

    /// Renews leases (≤ 1,000 per call). Returns the lease tokens of the runs lost and of those
    /// whose job has a cancel request (runs are named by token: two runs may share a job id).
    func extendLeases(_ runs: [(id: String, token: String)], length: Duration) async throws(JobQError) -> (renewed: Int, lost: [String], cancelRequested: [String]) {
        var arguments: [any RedisArgument] = [length.milliseconds]
        for run in runs.prefix(1000) { arguments.append(run.id); arguments.append(run.token) }
        let reply = try await run(scripts.extendLeases, keys: extendKeys, arguments: arguments, idempotent: true)
        guard let items = reply.array, items.count == 3, let renewed = items[0].int,
              let lost = items[1].array, let cancel = items[2].array else { throw unexpected(reply, scripts.extendLeases) }
        return (renewed, lost.compactMap(\.string), cancel.compactMap(\.string))
    }

    /// The reaper's call: expired leases back to waiting (or failed/cancelled), ≤ `batch` jobs.
    /// Without a lock (`lockMs` 0) it always runs; `remaining` is -1 when another holds it.
    func recoverStalled(batch: Int = 1000, holder: String = "manual", lockMs: Int64 = 0) async throws(JobQError) -> (requeued: Int, failed: Int, cancelled: Int, remaining: Int) {
        let reply = try await run(scripts.recoverStalled, keys: recoverKeys, arguments: [maxLen, min(batch, 1000), holder, lockMs], idempotent: true)
        guard let v = reply.array?.compactMap(\.int), v.count == 4 else { throw unexpected(reply, scripts.recoverStalled) }
        return (v[0], v[1], v[2], v[3])
    }

    /// Promotes due delayed jobs (≤ `batch`). Returns how many and ms until the next is due.
    func promoteDelayed(batch: Int = 1000) async throws(JobQError) -> (promoted: Int, nextDue: Int?) {
        let reply = try await run(scripts.promoteDelayed, keys: promoteKeys, arguments: [maxLen, min(batch, 1000)], idempotent: true)
        guard let v = reply.array?.compactMap(\.int), v.count == 2 else { throw unexpected(reply, scripts.promoteDelayed) }
        return (v[0], v[1] >= 0 ? v[1] : nil)
    }

    /// Records progress of a run. Returns whether a cancel was requested.
    func setProgress(_ id: String, token: String, percent: Double, message: String) async throws(JobQError) -> Bool {
        let clamped = min(100, max(0, percent))
        let reply = try await run(scripts.setProgress, keys: progressKeys(id),
                                  arguments: [id, token, String(format: "%.1f", clamped), String(message.prefix(1024)), maxLen], jobID: id, idempotent: true)
        return try ownerReply(reply, scripts.setProgress, id: id)
    }

    /// Stores a run's checkpoint. Returns whether a cancel was requested.
    func saveCheckpoint(_ id: String, token: String, bytes: [UInt8]) async throws(JobQError) -> Bool {
        guard bytes.count <= settings.maxCheckpointBytes else {
            throw JobQError(.tooLarge, queue: name, jobID: id, detail: "the checkpoint is \(bytes.count) bytes; the limit is \(settings.maxCheckpointBytes) bytes")
        }
        let reply = try await run(scripts.saveCheckpoint, keys: checkpointKeys(id), arguments: [token, bytes], jobID: id, idempotent: true)
        return try ownerReply(reply, scripts.saveCheckpoint, id: id)
    }

    private func ownerReply(_ reply: RedisReply, _ script: RedisScript, id: String) throws(JobQError) -> Bool {
        guard let items = reply.array?.compactMap(\.int), let code = items.first else { throw unexpected(reply, script, jobID: id) }
        if code == 1 { return items.count > 1 && items[1] == 1 }
        if let known = ScriptCode(rawValue: code) { throw known.error(queue: name, jobID: id) }
        throw unexpected(reply, script, jobID: id)
    }
}
