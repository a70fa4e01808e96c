public import Foundation

/// One group's counts and settings (`docs/flow-control.md`).
public struct GroupCounts: Sendable, Hashable, Codable {
    /// Where the group stands in the rotation.
    public enum Status: String, Sendable, Hashable, Codable {
        /// A job of it may start at its turn.
        case ready
        /// Held by time: its rate limit or a throttle (``GroupCounts/heldForMs``).
        case later
        /// Held until a slot of it frees (its concurrency) or it is resumed (paused).
        case blocked
        /// Nothing of it waits.
        case idle
    }

    public var group: String
    public var waiting = 0
    public var active = 0
    public var paused = false
    /// The limits in force for it: its own, else the queue's group defaults (nil: none).
    public var concurrency: Int?
    public var rate: RateLimit?
    /// True when the group has limits of its own (overrides of the defaults).
    public var hasOwnLimits = false
    /// A handler's ``RateLimited`` with scope `.group` holds it until then.
    public var throttledUntil: Date?
    /// Starts in its rate limit's current window.
    public var startsInWindow = 0
    public var status = Status.idle
    /// For ``Status/later``: ms until a take checks it again.
    public var heldForMs: Int?

    public init(group: String) { self.group = group }
}

/// Groups at run time: per-group counts, limits of their own, pause and resume. A change
/// reaches every worker at its next take.
extension QueueInspector {
    /// The known groups' counts (those with waiting or running jobs or settings of their own),
    /// most waiting first, at most `limit` of them (≤ 10,000; the first 100,000 known groups
    /// are read).
    public func groups(limit: Int = 100) async throws(JobQError) -> [GroupCounts] {
        let names = try await knownGroups(upTo: 100_000)
        var all: [GroupCounts] = []
        var start = 0
        while start < names.count {
            let chunk = Array(names[start..<min(start + 1000, names.count)])
            all += try await core.call(core.countGroupsCall(chunk))
            start += chunk.count
        }
        all.sort { ($0.waiting, $0.active, $1.group) > ($1.waiting, $1.active, $0.group) }
        return Array(all.prefix(max(0, min(limit, 10_000))))
    }

    /// One group's counts and settings (a group nothing is known of counts as idle).
    public func group(_ group: String) async throws(JobQError) -> GroupCounts {
        try QueueKeys.validate(group: group, queue: name)
        guard let counts = try await core.call(core.countGroupsCall([group])).first else {
            throw JobQError(.internalError, queue: name, detail: "countGroups answered nothing for one group")
        }
        return counts
    }

    /// Sets or removes one group's own limits (overrides of the queue's group defaults): `.set`
    /// gives the group its own limit, `.off` lifts that kind of limit for this group whatever the
    /// default, nil leaves it; `clearingAll` first drops its own limits and its throttle (the
    /// defaults apply again). Returns the group's counts after the change.
    @discardableResult
    public func setGroupLimits(
        _ group: String, rate: LimitSetting<RateLimit>? = nil, concurrency: LimitSetting<Int>? = nil, clearingAll: Bool = false
    ) async throws(JobQError) -> GroupCounts {
        try QueueKeys.validate(group: group, queue: name)
        var fields: [(QueueMetaField, String)] = []
        switch rate {
        case .set(let r)?:
            try r.validate(queue: name, what: "group rate")
            fields += [(.rateCount, String(r.count)), (.rateWindow, String(r.window.milliseconds))]
        case .off?: fields += [(.rateCount, "-1"), (.rateWindow, "")]
        case nil: break
        }
        switch concurrency {
        case .set(let n)?:
            guard QueueLimits.concurrencies.contains(n) else {
                throw JobQError(
                    .invalidOptions, queue: name,
                    detail: "group concurrency \(n): it is 1…\(QueueLimits.concurrencies.upperBound) jobs (use off for none)")
            }
            fields.append((.concurrency, String(n)))
        case .off?: fields.append((.concurrency, "-1"))
        case nil: break
        }
        if clearingAll || !fields.isEmpty {
            _ = try await core.call(core.setGroupCall(group, fields: fields, clearAll: clearingAll))
        }
        return try await self.group(group)
    }

    /// Pauses one group: its running jobs finish, none of its waiting jobs starts, adds go on;
    /// the other groups run as before. Returns false if it was paused already.
    @discardableResult
    public func pauseGroup(_ group: String) async throws(JobQError) -> Bool {
        try QueueKeys.validate(group: group, queue: name)
        return try await !core.call(core.setGroupCall(group, fields: [(.paused, JobField.flagSet)], clearAll: false)).wasPaused
    }

    /// Resumes a paused group. Returns false if it was not paused.
    @discardableResult
    public func resumeGroup(_ group: String) async throws(JobQError) -> Bool {
        try QueueKeys.validate(group: group, queue: name)
        return try await core.call(core.setGroupCall(group, fields: [(.paused, "")], clearAll: false)).wasPaused
    }

    /// The known groups' names, read with `SSCAN` (at most `most`).
    func knownGroups(upTo most: Int) async throws(JobQError) -> [String] {
        var names: [String] = []
        var cursor = "0"
        do {
            for _ in 0..<100_000 {
                let reply = try await core.client.send(RedisCommand("SSCAN", core.keys.knownGroups, cursor, "COUNT", 1000), idempotent: true)
                guard let parts = reply.array, parts.count == 2, let next = parts[0].string else { break }
                names += (parts[1].array ?? []).compactMap(\.string)
                cursor = next
                if cursor == "0" || names.count >= most { break }
            }
        } catch {
            throw JobQError(redis: error, queue: name)
        }
        return Array(Set(names)).sorted().prefix(most).map { $0 }
    }
}
