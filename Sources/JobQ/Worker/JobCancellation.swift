import Synchronization

/// Why a running job is being stopped (`docs/job-lifecycle.md`).
public enum CancellationReason: String, Sendable, Hashable, CustomStringConvertible {
    /// Someone cancelled the job (`JobQueue.cancel`): it ends `cancelled`, never retried.
    case cancelled
    /// The job's `timeout` passed: the attempt fails with reason `timeout` (retried while attempts remain).
    case timeout
    /// The worker is shutting down: the job goes back to waiting with no attempt used.
    case shutdown
    /// This worker no longer holds the job's lease (reaped, or it could not renew): its result
    /// would be discarded, so stop.
    case leaseLost

    public var description: String { rawValue }
}

/// The per-run cancellation token: fired once, with the first reason; fires the handler's task
/// cancellation and every `onCancel` callback.
final class JobCancellation: Sendable {
    private struct State {
        var reason: CancellationReason?
        var callbacks: [@Sendable (CancellationReason) -> Void] = []
    }
    private let state = Mutex(State())

    var reason: CancellationReason? { state.withLock { $0.reason } }
    var isFired: Bool { reason != nil }

    /// Fires the token; returns false when it had fired already (the first reason stays).
    @discardableResult
    func fire(_ reason: CancellationReason) -> Bool {
        let callbacks: [@Sendable (CancellationReason) -> Void]? = state.withLock { s in
            guard s.reason == nil else { return nil }
            s.reason = reason
            defer { s.callbacks = [] }
            return s.callbacks
        }
        guard let callbacks else { return false }
        for callback in callbacks { callback(reason) }
        return true
    }

    /// Runs `callback` when the token fires (at once if it has).
    func onFire(_ callback: @escaping @Sendable (CancellationReason) -> Void) {
        let fired: CancellationReason? = state.withLock { s in
            if let r = s.reason { return r }
            s.callbacks.append(callback)
            return nil
        }
        if let fired { callback(fired) }
    }

    /// Suspends until the token fires and returns the reason. The token cancels the waiting
    /// task as it fires, so the cancellation handler answers with the reason (already set by
    /// then); a task cancelled for another reason gets nil.
    func wait() async -> CancellationReason? {
        let once = OneShot<CancellationReason?>()
        return await withTaskCancellationHandler {
            onFire { once.settle($0) }
            return await once.value()
        } onCancel: {
            once.settle(self.reason)
        }
    }
}

/// Thrown by a handler to fail the job at once, without retries (`docs/job-lifecycle.md`).
public struct UnrecoverableError: Error, Sendable, CustomStringConvertible {
    public var reason: String
    public var details: String

    public init(_ details: String, reason: String = "unrecoverable") {
        self.reason = reason
        self.details = details
    }

    public var description: String { "\(reason): \(details)" }
}

/// Thrown by `JobContext.checkCancellation()` once the job's token has fired.
public struct JobCancelledError: Error, Sendable, CustomStringConvertible {
    public let reason: CancellationReason
    public init(reason: CancellationReason) { self.reason = reason }
    public var description: String { "the job was stopped: \(reason)" }
}

/// An error that asks for its own retry delay (an HTTP 429's `Retry-After`): used instead of the
/// job's backoff for that retry.
public protocol RetryDelayProviding: Error {
    var retryAfter: Duration? { get }
}

/// An error that names the failure reason recorded in the job (`error.reason`, the `failed` and
/// `retrying` events) instead of its type name: `http503`, `httpTimeout`.
public protocol FailureReasonProviding: Error {
    var failureReason: String { get }
}
