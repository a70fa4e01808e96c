public import Foundation

/// At most ``count`` job starts in any ``window`` (`docs/flow-control.md`): `100/1s`, `5000/1m`.
///
/// Enforced by the take script across every worker as a sliding log of start times, so every
/// window of that length, wherever it begins, holds at most `count` starts; the log costs
/// Redis about 60 bytes per start of the last window.
public struct RateLimit: Sendable, Hashable, Codable, CustomStringConvertible {
    /// Starts allowed per window, 1…100,000.
    public var count: Int
    /// The window, 1 ms…1 day.
    public var window: Duration

    public static let counts = 1...100_000
    public static let windows = Duration.milliseconds(1)...Duration.seconds(86_400)

    public init(_ count: Int, per window: Duration) {
        self.count = count
        self.window = window
    }

    /// Parses `N/DURATION`: `100/1s`, `5000/1m`, `10/250ms`; `N/s` reads as `N/1s`.
    public init?(parsing text: String) {
        let parts = text.trimmingCharacters(in: .whitespaces).split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, parts[0].allSatisfy({ $0.isASCII && $0.isNumber }), let count = Int(parts[0]) else { return nil }
        var unit = String(parts[1])
        if let first = unit.first, !first.isNumber { unit = "1" + unit }
        guard let window = Duration(parsing: unit) else { return nil }
        self.init(count, per: window)
    }

    public var description: String { "\(count)/\(Backoff.text(window))" }

    /// Checks the ranges; the message names the limit.
    func validate(queue: String, what: String) throws(JobQError) {
        guard Self.counts.contains(count) else {
            throw JobQError(.invalidOptions, queue: queue, detail: "\(what) \(description): the count must be 1…100000")
        }
        guard Self.windows.contains(window), window == .milliseconds(window.milliseconds) else {
            throw JobQError(.invalidOptions, queue: queue, detail: "\(what) \(description): the window must be whole milliseconds, 1ms…1d")
        }
    }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let parsed = RateLimit(parsing: text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not N/DURATION: \(text)"))
        }
        self = parsed
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}

/// A queue's flow limits as stored in its settings (`docs/flow-control.md`); nil = no limit.
public struct QueueLimits: Sendable, Hashable, Codable {
    /// Job starts per window, across every worker.
    public var rate: RateLimit?
    /// Jobs of the queue active at once, across every worker (counted from the leases, so a
    /// dead worker's slots come back when the reaper recovers its jobs).
    public var concurrency: Int?
    /// Waiting + delayed jobs the queue holds at most; an add beyond it fails with
    /// ``JobQError/Code-swift.struct/queueFull``.
    public var maxWaiting: Int?
    /// A handler's ``RateLimited`` holds every start until then (nil when none lies ahead).
    public var throttledUntil: Date?
    /// Each group's default rate (a group's own limit overrides it).
    public var groupRate: RateLimit?
    /// Each group's default concurrency: jobs of one group active at once, across every worker.
    public var groupConcurrency: Int?

    public init(
        rate: RateLimit? = nil, concurrency: Int? = nil, maxWaiting: Int? = nil, throttledUntil: Date? = nil,
        groupRate: RateLimit? = nil, groupConcurrency: Int? = nil
    ) {
        self.rate = rate
        self.concurrency = concurrency
        self.maxWaiting = maxWaiting
        self.throttledUntil = throttledUntil
        self.groupRate = groupRate
        self.groupConcurrency = groupConcurrency
    }

    /// True when no limit is set and no throttle lies ahead.
    public var isEmpty: Bool {
        rate == nil && concurrency == nil && maxWaiting == nil && throttledUntil == nil && groupRate == nil && groupConcurrency == nil
    }

    public static let concurrencies = 1...100_000
    public static let maxWaitings = 1...1_000_000_000
}

/// One limit in a ``QueueInspector/setLimits(rate:concurrency:maxWaiting:clearingAll:)`` call.
public enum LimitSetting<Value: Sendable & Hashable>: Sendable, Hashable {
    /// Set the limit to this value.
    case set(Value)
    /// Remove the limit.
    case off
}

/// Thrown by a handler to hold back its queue, or only the job's group: the job goes back to
/// the front of waiting with no attempt used, and no worker starts a job of the queue (of the
/// group) until `retryAfter` has passed (a longer throttle already set stays). For an API that
/// answered "429 Too Many Requests": `.group` when the limit is the tenant's (its API key),
/// `.queue` when it is shared.
public struct RateLimited: Error, Sendable, Hashable, CustomStringConvertible {
    /// What a ``RateLimited`` holds back.
    public enum Scope: String, Sendable, Hashable, Codable {
        /// Every job of the queue.
        case queue
        /// The jobs of the throwing job's group (the queue when the job has no group).
        case group
    }

    /// How long the queue waits, 1 ms…1 day.
    public var retryAfter: Duration
    public var scope: Scope

    public init(retryAfter: Duration, scope: Scope = .queue) {
        self.retryAfter = retryAfter
        self.scope = scope
    }

    public var description: String {
        "rate limited: retry after \(Backoff.text(retryAfter))" + (scope == .group ? " (the job's group)" : "")
    }

    /// The throttle in ms, within its range.
    var milliseconds: Int { min(max(retryAfter.milliseconds, 1), 86_400_000) }
}
