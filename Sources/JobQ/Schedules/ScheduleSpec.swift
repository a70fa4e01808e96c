public import Foundation

/// When a schedule fires: a cron expression on a time zone's wall clock, or a fixed interval.
///
/// ```swift
/// try await queue.upsertSchedule(id: "nightly-report", .cron("0 2 * * *", timeZone: "Europe/Berlin"), job: .init(name: "report", payload: .json("{}")))
/// try await queue.upsertSchedule(id: "sync", .every(.minutes(5)), job: .init(name: "sync", payload: .json("{}")))
/// ```
/// Both are checked when the schedule is upserted (``JobQueue/upsertSchedule(id:_:job:options:)``):
/// an invalid expression, an unknown zone or an interval under a second is refused there, with
/// the field named, and nothing is stored.
public struct ScheduleSpec: Sendable, Hashable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        /// A cron expression (``CronExpression``) read on `timeZone`'s wall clock (an IANA name).
        case cron(String, timeZone: String)
        /// Every `interval`, from `startingAt` (nil: from the Unix epoch, so an interval that
        /// divides a day falls on round times: `.every(.minutes(5))` fires at :00, :05…).
        case every(Duration, startingAt: Date?)
    }

    public let kind: Kind

    public init(_ kind: Kind) { self.kind = kind }

    /// A cron schedule: 5 fields, or 6 with seconds first; `timeZone` is an IANA name.
    public static func cron(_ expression: String, timeZone: String = "UTC") -> ScheduleSpec {
        ScheduleSpec(.cron(expression, timeZone: timeZone))
    }

    /// A fixed interval of at least one second.
    public static func every(_ interval: Duration, startingAt: Date? = nil) -> ScheduleSpec {
        ScheduleSpec(.every(interval, startingAt: startingAt))
    }

    public var description: String {
        switch kind {
        case .cron(let expression, let zone): zone == "UTC" ? "cron \(expression)" : "cron \(expression) (\(zone))"
        case .every(let interval, let start):
            "every \(Self.format(interval))" + (start.map { " from \(ScheduleTiming.iso($0.epochMs))" } ?? "")
        }
    }

    /// `90s` → `1m30s`; whole units, largest first.
    static func format(_ d: Duration) -> String {
        var ms = Int64(d.milliseconds)
        var out = ""
        for (unit, size) in [("d", Int64(86_400_000)), ("h", 3_600_000), ("m", 60_000), ("s", 1000)] where ms >= size {
            out += "\(ms / size)\(unit)"
            ms %= size
        }
        if ms > 0 || out.isEmpty { out += "\(ms)ms" }
        return out
    }

    /// Checks the expression, the zone or the interval (what an upsert checks first).
    /// - Throws: ``JobQError/Code-swift.struct/invalidSchedule``, naming what is wrong.
    public func validate() throws(JobQError) { _ = try timing() }

    /// The checked form: the next tick after any time.
    func timing() throws(JobQError) -> ScheduleTiming {
        switch kind {
        case .cron(let expression, let zoneName):
            let cron = try CronExpression(expression)
            guard let zone = ScheduleTiming.zone(named: zoneName) else {
                throw JobQError(
                    .invalidSchedule,
                    detail:
                        "time zone \"\(CronExpression.shown(zoneName))\" is not an IANA zone this system knows (like UTC, Europe/Berlin, America/New_York)"
                )
            }
            return .cron(cron, zone)
        case .every(let interval, let start):
            let ms = Int64(interval.milliseconds)
            guard ms >= 1000 else { throw JobQError(.invalidSchedule, detail: "every: the interval is \(Self.format(interval)); the least is 1s") }
            guard ms <= 366 * 86_400_000 else { throw JobQError(.invalidSchedule, detail: "every: the interval is over a year; use a cron expression") }
            return .every(ms, anchor: start.map(\.epochMs) ?? 0)
        }
    }
}

/// What happens to ticks missed while nothing advanced the schedule (every worker stopped, Redis
/// down): a tick is missed when it is later than the misfire grace by the time a scheduler gets
/// to it. Ticks within the grace are each made, late.
public enum MisfirePolicy: Sendable, Hashable, CustomStringConvertible {
    /// Make none of them; go on with the next tick to come.
    case skip
    /// Make one job for them (the first missed tick's), skip the rest. The default.
    case fireOnce
    /// Make the latest `max` of them (1…1,000), in order; skip the older ones.
    case catchUp(max: Int)

    public var description: String {
        switch self {
        case .skip: "skip"
        case .fireOnce: "fireOnce"
        case .catchUp(let max): "catchUp:\(max)"
        }
    }

    /// Reads the stored (and `--misfire`) form: `skip`, `fireOnce`, `catchUp:<n>`.
    public init?(_ text: String) {
        switch text {
        case "skip": self = .skip
        case "fireOnce": self = .fireOnce
        default:
            guard text.hasPrefix("catchUp:"), let n = Int(text.dropFirst("catchUp:".count)) else { return nil }
            self = .catchUp(max: n)
        }
    }
}

/// What a tick does when the previous tick's job has not ended.
public enum OverlapPolicy: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// Add the tick's job anyway (runs may overlap). The default; the job is made ahead of its
    /// time and starts on time.
    case allow
    /// Skip the tick while the previous job waits or runs (event `skipped`, reason `overlap`).
    case skipIfRunning
    /// Cancel the previous job (through jobq's cancel: a running one gets its token fired) and
    /// add the tick's job.
    case cancelPrevious

    public var description: String { rawValue }
}

/// A schedule's policies.
public struct ScheduleOptions: Sendable, Hashable {
    public var misfire: MisfirePolicy
    public var overlap: OverlapPolicy
    /// Each tick's job starts up to this much after its tick (the same delay for every
    /// scheduler: it is drawn from the schedule id and the tick), spreading a fleet of schedules
    /// that share a time. 0–1 hour; default none.
    public var jitter: Duration
    /// How late a tick may be made before it counts as missed (``MisfirePolicy``): 1 second
    /// to 1 day, default 60 seconds.
    public var misfireGrace: Duration

    public init(misfire: MisfirePolicy = .fireOnce, overlap: OverlapPolicy = .allow, jitter: Duration = .zero, misfireGrace: Duration = .seconds(60)) {
        self.misfire = misfire
        self.overlap = overlap
        self.jitter = jitter
        self.misfireGrace = misfireGrace
    }

    /// Checks the ranges (what an upsert checks first).
    public func validate() throws(JobQError) {
        if case .catchUp(let max) = misfire, !(1...1000).contains(max) {
            throw JobQError(.invalidSchedule, detail: "misfire: catchUp's max is \(max); use 1…1000")
        }
        guard jitter >= .zero, jitter <= .seconds(3600) else { throw JobQError(.invalidSchedule, detail: "jitter: use 0…1h") }
        guard misfireGrace >= .seconds(1), misfireGrace <= .seconds(86400) else {
            throw JobQError(.invalidSchedule, detail: "misfireGrace: use 1s…1d")
        }
    }
}

/// A checked ``ScheduleSpec``: computes ticks (ms since the epoch).
enum ScheduleTiming: Sendable {
    case cron(CronExpression, TimeZone?)
    case every(Int64, anchor: Int64)

    /// The first tick strictly after `ms`; nil when a cron expression matches nothing within 10
    /// years.
    func next(after ms: Int64) -> Int64? {
        switch self {
        case .cron(let cron, let zone): return cron.nextMs(after: ms, in: zone)
        case .every(let interval, let anchor):
            if ms < anchor { return anchor }
            let (k, _) = CronExpression.divide(ms - anchor, interval)
            return anchor + (k + 1) * interval
        }
    }

    /// A zone by IANA name: nil when the name is unknown, `.some(nil)` for UTC (no lookup).
    static func zone(named name: String) -> TimeZone?? {
        if name == "UTC" || name == "Etc/UTC" { return .some(nil) }
        guard name.utf8.count <= 64, let zone = TimeZone(identifier: name) else { return nil }
        return .some(zone)
    }

    /// `2026-12-02T02:00:00Z`, with `.123` only when the time has milliseconds.
    static func iso(_ ms: Int64) -> String {
        let (days, rest) = CronExpression.divide(ms, 86_400_000)
        let (y, m, d) = CronExpression.civil(days)
        let s = rest / 1000
        let fraction = rest % 1000
        func two(_ v: Int64) -> String { v < 10 ? "0\(v)" : "\(v)" }
        var text = "\(y)-\(two(Int64(m)))-\(two(Int64(d)))T\(two(s / 3600)):\(two(s % 3600 / 60)):\(two(s % 60))"
        if fraction > 0 { text += "." + String(String(fraction + 1000).dropFirst()) }
        return text + "Z"
    }

    /// The job id of a tick: the schedule id, `@`, the tick's time (UTC). The same for every
    /// scheduler, so a repeat or a race adds the tick once.
    static func jobID(schedule: String, tick: Int64) -> String { schedule + "@" + iso(tick) }

    /// The tick's jitter in ms: drawn from the schedule id and the tick, so the same everywhere.
    static func jitter(schedule: String, tick: Int64, upTo maximum: Int64) -> Int64 {
        guard maximum > 0 else { return 0 }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in schedule.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        var x = hash ^ UInt64(bitPattern: tick)
        x = (x ^ (x >> 30)) &* 0xbf58_476d_1ce4_e5b9
        x = (x ^ (x >> 27)) &* 0x94d0_49bb_1331_11eb
        x ^= x >> 31
        return Int64(x % UInt64(maximum + 1))
    }
}

extension Date {
    var epochMs: Int64 { Int64((timeIntervalSince1970 * 1000).rounded()) }
    init(epochMs ms: Int64) { self.init(timeIntervalSince1970: Double(ms) / 1000) }
}

extension Duration {
    /// `n` minutes, for schedules: `.every(.minutes(5))`.
    public static func minutes(_ n: Int) -> Duration { .seconds(Int64(n) * 60) }
    /// `n` hours.
    public static func hours(_ n: Int) -> Duration { .seconds(Int64(n) * 3600) }
}
