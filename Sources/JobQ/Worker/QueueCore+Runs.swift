import Foundation

/// The owner-side calls a worker makes for the runs it holds (`docs/job-lifecycle.md`): take, finish, renew,
/// progress, checkpoint — each one script, each checking the lease token — and the reaper's
/// call (recover stalled jobs). Due delayed jobs are promoted by the take itself.
extension QueueCore {
    /// What a take found.
    enum Take: Sendable {
        /// A job, now active under the caller's lease token. `nextDue`: ms until the earliest
        /// delayed job is due (nil: none delayed).
        case job(Job, nextDue: Int?)
        /// Nothing runnable.
        case empty(nextDue: Int?)
        case paused
        /// Jobs wait, but a flow limit refuses a start: come back in `retryAfterMs` (nil: when
        /// the marker says a slot freed).
        case limited(retryAfterMs: Int?, limit: String)
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
        /// The handler threw ``RateLimited``: back to the front of waiting, no attempt used,
        /// the queue (or, with `group`, the job's group) throttled for `throttleMs`.
        case rateLimited(throttleMs: Int, group: Bool = false)
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
        try await call(takeJobCall(lease: lease))
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
        case .rateLimited(let ms, let group):
            outcome = group ? "ratelimited-group" : "ratelimited"
            retryDelay = Int64(ms)
        }
        if outcome == "completed", value.count > settings.maxResultBytes {
            // Oversized results fail the run rather than being stored (`docs/data-model.md`).
            return try await finish(
                id, token: token,
                end: .unrecoverable(
                    reason: "resultTooLarge",
                    details: "the result is \(value.count) bytes; the limit is \(settings.maxResultBytes) bytes"), next: next)
        }
        if outcome != "completed", value.count > settings.maxErrorBytes {
            value = Array(value.prefix(settings.maxErrorBytes - 40)) + Array(" … [cut at \(settings.maxErrorBytes) bytes]".utf8)
        }
        return try await call(finishJobCall(id, token: token, outcome: outcome, value: value, reason: reason, retryDelayMs: retryDelay, next: next))
    }

    /// Renews leases (≤ 1,000 per call). Returns the lease tokens of the runs lost and of those
    /// whose job has a cancel request (runs are named by token: two runs may share a job id).
    func extendLeases(_ runs: [(id: String, token: String)], length: Duration) async throws(JobQError) -> (
        renewed: Int, lost: [String], cancelRequested: [String]
    ) {
        try await call(extendLeasesCall(runs, length: length))
    }

    /// The reaper's call: expired leases back to waiting (or failed/cancelled), ≤ `batch` jobs.
    /// Without a lock (`lockMs` 0) it always runs; `remaining` is -1 when another holds it.
    func recoverStalled(batch: Int = 1000, holder: String = "manual", lockMs: Int64 = 0) async throws(JobQError) -> (
        requeued: Int, failed: Int, cancelled: Int, remaining: Int
    ) {
        try await call(recoverStalledCall(batch: batch, holder: holder, lockMs: lockMs))
    }

    /// Records progress of a run. Returns whether a cancel was requested.
    func setProgress(_ id: String, token: String, percent: Double, message: String) async throws(JobQError) -> Bool {
        try await call(setProgressCall(id, token: token, percent: percent, message: message))
    }

    /// Stores a run's checkpoint. Returns whether a cancel was requested.
    func saveCheckpoint(_ id: String, token: String, bytes: [UInt8]) async throws(JobQError) -> Bool {
        guard bytes.count <= settings.maxCheckpointBytes else {
            throw JobQError(
                .tooLarge, queue: name, jobID: id, detail: "the checkpoint is \(bytes.count) bytes; the limit is \(settings.maxCheckpointBytes) bytes")
        }
        return try await call(saveCheckpointCall(id, token: token, bytes: bytes))
    }
}
