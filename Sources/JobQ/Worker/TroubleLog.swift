import Foundation
import Logging

/// Logs a repeated failure once per change of state, not once per try: the first failure (and
/// each change of its message) as a warning, a summary every 30 s while it lasts, and one line
/// when things work again. A Redis outage of a minute then costs a handful of lines, not one per
/// retry.
///
/// - Important: not thread-safe; owned by one thread (the lease keeper's).
final class TroubleLog {
    private let logger: Logger
    private let what: String
    private let summaryEvery: Duration
    private var since: ContinuousClock.Instant?
    private var lastSummary: ContinuousClock.Instant?
    private var lastMessage = ""
    private var failures = 0
    private var failuresSinceSummary = 0

    init(logger: Logger, what: String, summaryEvery: Duration = .seconds(30)) {
        self.logger = logger
        self.what = what
        self.summaryEvery = summaryEvery
    }

    /// True while the last try failed.
    var isFailing: Bool { since != nil }

    /// How many tries failed since the trouble began (0 when none).
    var failureCount: Int { failures }

    func failed(_ message: String) {
        let now = ContinuousClock.now
        failures += 1
        failuresSinceSummary += 1
        if since == nil {
            since = now
            lastSummary = now
            lastMessage = message
            failuresSinceSummary = 0
            logger.warning("\(what): \(message); retrying with backoff (repeats are summarized every \(summaryEvery))")
        } else if message != lastMessage {
            lastMessage = message
            logger.warning("\(what): \(message); still retrying")
        }
    }

    func succeeded() {
        guard let since else { return }
        let elapsed = ContinuousClock.now - since
        logger.notice("\(what): Redis answers again after \(failures) failed tries over \(Self.seconds(elapsed))")
        self.since = nil
        lastSummary = nil
        failures = 0
        failuresSinceSummary = 0
        lastMessage = ""
    }

    /// Logs the periodic summary when one is due (call it once per loop).
    func summarizeIfDue() {
        guard let since, let last = lastSummary, ContinuousClock.now - last >= summaryEvery else { return }
        let elapsed = ContinuousClock.now - since
        logger.warning("\(what): still failing after \(Self.seconds(elapsed)): \(failuresSinceSummary) more failed tries; last: \(lastMessage)")
        lastSummary = .now
        failuresSinceSummary = 0
    }

    private static func seconds(_ d: Duration) -> String {
        let (s, atto) = d.components
        return String(format: "%.1f s", Double(s) + Double(atto) / 1e18)
    }
}
