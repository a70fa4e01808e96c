import ArgumentParser
import Foundation
import JobQ

/// `jobq-admin limits <queue>`: shows or changes a queue's flow limits.
struct Limits: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show or change a queue's flow limits: rate, concurrency cap, maximum waiting (docs/flow-control.md).",
        discussion: """
            Each limit holds across every worker and takes effect at the next take. Give a value to set a limit, `off` to remove it; a limit not named stays. --clear removes every limit (and a handler's throttle) before the others are set.

              jobq-admin limits payments --rate 100/1s --concurrency 20
              jobq-admin limits payments --max-waiting 100000
              jobq-admin limits payments --concurrency off
            """)

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The queue.") var queue: String
    @Option(help: "Job starts per window across every worker: 100/1s, 5000/1m; off removes it.", transform: Self.rate) var rate: LimitSetting<RateLimit>?
    @Option(help: "Jobs of the queue running at once across every worker, 1…100000; off removes it.", transform: Self.count)
    var concurrency: LimitSetting<Int>?
    @Option(
        name: .customLong("max-waiting"), help: "Waiting + delayed jobs the queue holds at most; adds beyond fail (queueFull); off removes it.",
        transform: Self.count) var maxWaiting: LimitSetting<Int>?
    @Flag(help: "Remove every limit (and a throttle) first.") var clear = false

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
        let counts = try await global.withClient { client in
            let inspector = try global.queue(queue, client).inspector
            if clear || rate != nil || concurrency != nil || maxWaiting != nil {
                try await inspector.setLimits(rate: rate, concurrency: concurrency, maxWaiting: maxWaiting, clearingAll: clear)
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
        rows.append(["holding back", Output.limitLine(counts)])
        Output.line(Output.table(["LIMIT", "VALUE"], rows))
    }
}

extension Output {
    /// What the limits hold back now: "nothing", or "12 waiting jobs (concurrency; until a slot frees)".
    static func limitLine(_ c: JobCounts) -> String {
        guard let by = c.limitedBy else { return "nothing" }
        let when = c.limitWaitMs.map { "for \(span(Double($0) / 1000))" } ?? "until a slot frees"
        return "\(c.waitingForLimit) waiting job\(c.waitingForLimit == 1 ? "" : "s") (\(by); \(when))"
    }
}
