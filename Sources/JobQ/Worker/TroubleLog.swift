import Foundation
import Logging
import Synchronization

/// Logs a repeated failure once per change of state, not once per try: the first failure (and
/// each change of its message) as a warning, a summary every 30 s while it lasts, and one line
/// when things work again. A Redis outage of a minute then costs a handful of lines, not one per
/// retry — for all of a worker's upkeep services together (lease renewal, reaper, heartbeat),
/// which share one.
final class TroubleLog: Sendable {
    private struct State {
        var since: ContinuousClock.Instant?
        var lastSummary: ContinuousClock.Instant?
        var lastMessage = ""
        /// The messages logged in this spell of trouble: services failing in turn with their own
        /// wording log each once, not at every alternation.
        var seen: Set<String> = []
        var failures = 0
        var failuresSinceSummary = 0
    }

    private let logger: Logger
    private let what: String
    private let summaryEvery: Duration
    private let state = Mutex(State())

    init(logger: Logger, what: String, summaryEvery: Duration = .seconds(30)) {
        self.logger = logger
        self.what = what
        self.summaryEvery = summaryEvery
    }

    /// True while the last try failed.
    var isFailing: Bool { state.withLock { $0.since != nil } }

    /// How many tries failed since the trouble began (0 when none).
    var failureCount: Int { state.withLock { $0.failures } }

    func failed(_ message: String) {
        let line: (first: Bool, text: String)? = state.withLock { s in
            let now = ContinuousClock.now
            s.failures += 1
            s.failuresSinceSummary += 1
            if s.since == nil {
                s.since = now
                s.lastSummary = now
                s.lastMessage = message
                s.failuresSinceSummary = 0
                s.seen = [message]
                return (true, message)
            }
            s.lastMessage = message
            guard s.seen.count < 16, s.seen.insert(message).inserted else { return nil }
            return (false, message)
        }
        guard let line else { return }
        if line.first {
            logger.warning("\(what): \(line.text); retrying with backoff (repeats are summarized every \(summaryEvery))")
        } else {
            logger.warning("\(what): \(line.text); still retrying")
        }
    }

    func succeeded() {
        let ended: (failures: Int, elapsed: Duration)? = state.withLock { s in
            guard let since = s.since else { return nil }
            defer { s = State() }
            return (s.failures, ContinuousClock.now - since)
        }
        guard let ended else { return }
        logger.notice("\(what): Redis answers again after \(ended.failures) failed tries over \(Self.seconds(ended.elapsed))")
    }

    /// Logs the periodic summary when one is due (call it once per loop).
    func summarizeIfDue() {
        let summary: (elapsed: Duration, count: Int, last: String)? = state.withLock { s in
            guard let since = s.since, let last = s.lastSummary, ContinuousClock.now - last >= summaryEvery else { return nil }
            defer {
                s.lastSummary = .now
                s.failuresSinceSummary = 0
            }
            return (ContinuousClock.now - since, s.failuresSinceSummary, s.lastMessage)
        }
        guard let summary else { return }
        logger.warning("\(what): still failing after \(Self.seconds(summary.elapsed)): \(summary.count) more failed tries; last: \(summary.last)")
    }

    /// One script call; nil when it failed (this log says why, and the caller's schedule decides
    /// when to try again).
    func call<Reply>(_ core: QueueCore, _ call: ScriptCall<Reply>) async -> Reply? {
        do {
            let reply = try await core.call(call)
            succeeded()
            return reply
        } catch {
            // One wording for every script while Redis is away, so an outage is one warning and
            // a summary, not a line each time the failing script changes.
            if error.code == .redis, let redis = error.redisError {
                failed("cannot reach Redis: \(redis)")
            } else {
                failed("\(call.script.name): \(error)")
            }
            return nil
        }
    }

    private static func seconds(_ d: Duration) -> String {
        let (s, atto) = d.components
        return String(format: "%.1f s", Double(s) + Double(atto) / 1e18)
    }
}
