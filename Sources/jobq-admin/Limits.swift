import ArgumentParser
import Foundation
import JobQ

/// `jobq-admin limits <queue>`: shows or changes a queue's flow limits.
struct Limits: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show or change a queue's flow limits: rate, concurrency cap, maximum waiting, each group's limits (docs/flow-control.md).",
        discussion: """
            Each limit holds across every worker and takes effect at the next take. Give a value to set a limit, `off` to remove it; a limit not named stays. --clear removes every limit (and a handler's throttle) before the others are set.

            --group-rate and --group-concurrency are every group's defaults. With --group ID, --rate and --concurrency set that group's own limits instead (off: no limit of that kind for it, whatever the default), and --clear drops them (the defaults apply again).

              jobq-admin limits payments --rate 100/1s --concurrency 20
              jobq-admin limits payments --max-waiting 100000
              jobq-admin limits payments --concurrency off
              jobq-admin limits llm --group-concurrency 2 --group-rate 60/1m
              jobq-admin limits llm --group tenant-42 --concurrency 10
            """)

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The queue.") var queue: String
    @Option(help: "Job starts per window across every worker: 100/1s, 5000/1m; off removes it.", transform: Self.rate) var rate: LimitSetting<RateLimit>?
    @Option(help: "Jobs of the queue running at once across every worker, 1…100000; off removes it.", transform: Self.count)
    var concurrency: LimitSetting<Int>?
    @Option(
        name: .customLong("max-waiting"), help: "Waiting + delayed jobs the queue holds at most; adds beyond fail (queueFull); off removes it.",
        transform: Self.count) var maxWaiting: LimitSetting<Int>?
    @Option(name: .customLong("group-rate"), help: "Each group's default rate: N/DURATION; off removes it.", transform: Self.rate)
    var groupRate: LimitSetting<RateLimit>?
    @Option(name: .customLong("group-concurrency"), help: "Each group's default: jobs of one group running at once; off removes it.", transform: Self.count)
    var groupConcurrency: LimitSetting<Int>?
    @Option(help: "Apply --rate, --concurrency and --clear to this group's own limits; shows the group.") var group: String?
    @Flag(help: "Remove every limit (and a throttle) first; with --group, that group's own limits.") var clear = false

    func validate() throws {
        if group != nil {
            if maxWaiting != nil || groupRate != nil || groupConcurrency != nil {
                throw ValidationError("--max-waiting, --group-rate and --group-concurrency are the queue's; give them without --group")
            }
        }
    }

    /// A value, or `off` (`none`) to remove the limit.
    static func rate(_ text: String) throws -> LimitSetting<RateLimit> {
        if text == "off" || text == "none" { return .off }
        guard let r = RateLimit(parsing: text) else { throw ValidationError("not a rate: \(text) (use N/DURATION, like 100/1s or 5000/1m, or off)") }
        return .set(r)
    }

    static func count(_ text: String) throws -> LimitSetting<Int> {
        if text == "off" || text == "none" { return .off }
        guard text.allSatisfy({ $0.isASCII && $0.isNumber }), let n = Int(text), n >= 1 else {
            throw ValidationError("not a count: \(text) (use a whole number from 1, or off)")
        }
        return .set(n)
    }

    func run() async throws {
        if let group {
            try await runGroup(group)
            return
        }
        let counts = try await global.withClient { client in
            let inspector = try global.queue(queue, client).inspector
            if clear || rate != nil || concurrency != nil || maxWaiting != nil || groupRate != nil || groupConcurrency != nil {
                try await inspector.setLimits(
                    rate: rate, concurrency: concurrency, maxWaiting: maxWaiting, groupRate: groupRate, groupConcurrency: groupConcurrency,
                    clearingAll: clear)
            }
            return try await inspector.counts()
        }
        if global.json {
            Output.json(JSONShape.counts(queue, counts))
            return
        }
        let l = counts.limits
        var rows: [[String]] = [
            ["rate", l.rate.map { "\($0) (\(counts.startsInWindow) started in the window)" } ?? "none"],
            ["concurrency", l.concurrency.map { "\($0) (\(counts.active) active)" } ?? "none"],
            ["max waiting", l.maxWaiting.map { "\($0) (\(counts.waiting + counts.delayed) waiting and delayed)" } ?? "none"],
        ]
        if let until = l.throttledUntil { rows.append(["throttled", "until \(Output.relative(until)) (a handler's RateLimited)"]) }
        rows.append(["group rate", l.groupRate.map { "\($0) per group" } ?? "none"])
        rows.append(["group concurrency", l.groupConcurrency.map { "\($0) per group" } ?? "none"])
        if counts.groups > 0 {
            rows.append(["groups", "\(counts.groups) (\(counts.groupsReady) ready, \(counts.groupsHeld) held by their limits)"])
        }
        rows.append(["holding back", Output.limitLine(counts)])
        Output.line(Output.table(["LIMIT", "VALUE"], rows))
    }

    private func runGroup(_ group: String) async throws {
        let g = try await global.withClient { client in
            let inspector = try global.queue(queue, client).inspector
            if clear || rate != nil || concurrency != nil {
                return try await inspector.setGroupLimits(group, rate: rate, concurrency: concurrency, clearingAll: clear)
            }
            return try await inspector.group(group)
        }
        if global.json {
            Output.json(JSONShape.group(queue, g))
            return
        }
        let own = g.hasOwnLimits ? "its own" : "the queue's default"
        var rows: [[String]] = [
            ["group", g.group],
            ["rate", g.rate.map { "\($0) (\(own); \(g.startsInWindow) started in the window)" } ?? "none"],
            ["concurrency", g.concurrency.map { "\($0) (\(own); \(g.active) active)" } ?? "none (\(g.active) active)"],
            ["waiting", String(g.waiting)],
            ["paused", g.paused ? "yes" : "no"],
        ]
        if let until = g.throttledUntil { rows.append(["throttled", "until \(Output.relative(until)) (a handler's RateLimited)"]) }
        rows.append(["status", Output.groupStatus(g)])
        Output.line(Output.table(["LIMIT", "VALUE"], rows))
    }
}

/// `jobq-admin groups <queue>`: per-group counts.
struct Groups: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Per-group counts of a queue: waiting, active, limits in force, where each group stands (docs/flow-control.md).",
        discussion: "Groups with the most waiting jobs first. A group is listed while it has waiting or running jobs or limits of its own.")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The queue.") var queue: String
    @Option(help: "At most this many groups (1–10000).") var limit = 50

    func validate() throws {
        guard (1...10_000).contains(limit) else { throw ValidationError("--limit must be 1…10000, not \(limit)") }
    }

    func run() async throws {
        let groups = try await global.withClient { client in try await global.queue(queue, client).inspector.groups(limit: limit) }
        if global.json {
            Output.json(groups.map { JSONShape.group(queue, $0) })
            return
        }
        guard !groups.isEmpty else {
            Output.line("no groups in \(queue)")
            return
        }
        let rows = groups.map { g -> [String] in
            [
                g.group, String(g.waiting), String(g.active), g.concurrency.map(String.init) ?? "-", g.rate?.description ?? "-",
                Output.groupStatus(g),
            ]
        }
        Output.line(Output.table(["GROUP", "WAITING", "ACTIVE", "CONCURRENCY", "RATE", "STATUS"], rows, numeric: [1, 2], shrinkable: [0]))
    }
}

extension Output {
    /// Where a group stands: "ready", "paused", "held 1.2s (rate)", "held until a slot frees".
    static func groupStatus(_ g: GroupCounts) -> String {
        switch g.status {
        case .ready: return "ready"
        case .idle: return g.paused ? "paused (nothing waiting)" : "idle"
        case .later: return "held \(g.heldForMs.map { span(Double($0) / 1000) } ?? "a moment") (\(g.throttledUntil != nil ? "throttled" : "rate"))"
        case .blocked: return g.paused ? "paused" : "held until a slot frees"
        }
    }

    /// What the limits hold back now: "nothing", or "12 waiting jobs (concurrency; until a slot frees)".
    static func limitLine(_ c: JobCounts) -> String {
        guard let by = c.limitedBy else { return "nothing" }
        let when = c.limitWaitMs.map { "for \(span(Double($0) / 1000))" } ?? "until a slot frees"
        return "\(c.waitingForLimit) waiting job\(c.waitingForLimit == 1 ? "" : "s") (\(by); \(when))"
    }
}
