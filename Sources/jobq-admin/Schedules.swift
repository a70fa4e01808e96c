import ArgumentParser
import Foundation
import JobQ

/// `jobq-admin schedules [<queue>]`: every schedule, with its next runs and its last one.
struct Schedules: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List recurring jobs: spec, zone, the next 3 runs (local and UTC), the last run and its outcome, paused, policies.",
        discussion: "Without a queue, every registered queue's. Change them with `jobq-admin schedule` (docs/schedules.md).")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The queue (default: every queue).") var queue: String?

    func run() async throws {
        let found = try await global.withClient { client -> [(String, [Schedule])] in
            var names: [String]
            if let queue {
                names = [queue]
            } else {
                names = try await QueueInspector.overview(client: client).map(\.name)
            }
            names.sort()
            var out: [(String, [Schedule])] = []
            for name in names {
                let schedules = try await global.queue(name, client).schedules()
                if queue != nil || !schedules.isEmpty { out.append((name, schedules)) }
            }
            return out
        }
        if global.json {
            Output.json(found.flatMap { $0.1.map(JSONShape.schedule) })
            return
        }
        let all = found.flatMap(\.1)
        if all.isEmpty {
            Output.line(queue.map { "no schedules in \(Output.safe($0))" } ?? "no schedules")
            return
        }
        var blocks: [String] = []
        for s in all { blocks.append(ScheduleText.block(s)) }
        Output.line(blocks.joined(separator: "\n"))
    }
}

/// How a schedule reads in a terminal.
enum ScheduleText {
    static func block(_ s: Schedule) -> String {
        let zone = Self.zone(s)
        var lines = ["\(Output.safe(s.queue)) / \(Output.safe(s.id))  \(Output.safe(s.spec.description))  \(s.isPaused ? "PAUSED" : "active")"]
        let next = s.upcoming(3)
        lines.append("  next:     " + (next.isEmpty ? (s.isPaused ? "— (paused)" : "—") : next.map { both($0, zone) }.joined(separator: ", ")))
        if let last = s.lastRun {
            lines.append("  last:     \(both(last.tick, zone))  job \(Output.safe(last.jobID))  \(last.state?.rawValue ?? "record gone")")
        } else {
            lines.append("  last:     — (no run yet)")
        }
        var policy = "misfire \(s.options.misfire), overlap \(s.options.overlap), grace \(format(s.options.misfireGrace))"
        if s.options.jitter > .zero { policy += ", jitter \(format(s.options.jitter))" }
        lines.append("  policies: \(policy)")
        var job = Output.safe(s.jobName)
        if s.jobOptions.attempts != 3 { job += "  attempts \(s.jobOptions.attempts)" }
        if s.jobOptions.priority.value != 0 { job += "  priority \(s.jobOptions.priority.value)" }
        if let group = s.jobOptions.group { job += "  group \(Output.safe(group))" }
        lines.append("  job:      \(job)  payload \(Output.excerpt(s.payload.bytes, limit: 40))")
        var counts = "fired \(s.fired), skipped \(s.skipped)"
        if let reason = s.lastSkipReason { counts += " (last: \(Output.safe(reason)), \(Output.relative(s.lastSkippedAt)))" }
        lines.append("  counts:   \(counts)")
        return lines.joined(separator: "\n")
    }

    /// The zone a schedule's times read in: its own for cron, this machine's for an interval.
    static func zone(_ s: Schedule) -> TimeZone {
        if case .cron(_, let name) = s.spec.kind, let zone = TimeZone(identifier: name) { return zone }
        return TimeZone.current
    }

    /// `2026-12-03 02:00:00 CET (01:00:00Z)`.
    static func both(_ date: Date, _ zone: TimeZone) -> String {
        let local = DateFormatter()
        local.locale = Locale(identifier: "en_US_POSIX")
        local.timeZone = zone
        local.dateFormat = "yyyy-MM-dd HH:mm:ss xxx"
        if zone.secondsFromGMT(for: date) == 0 && (zone.identifier == "UTC" || zone.identifier == "GMT") {
            local.dateFormat = "yyyy-MM-dd HH:mm:ss'Z'"
            return local.string(from: date)
        }
        let utc = DateFormatter()
        utc.locale = Locale(identifier: "en_US_POSIX")
        utc.timeZone = TimeZone(identifier: "UTC")
        utc.dateFormat = "HH:mm:ss'Z'"
        return "\(local.string(from: date)) (\(utc.string(from: date)))"
    }

    static func format(_ d: Duration) -> String {
        let ms = Int(d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000)
        if ms % 86_400_000 == 0 { return "\(ms / 86_400_000)d" }
        if ms % 3_600_000 == 0 { return "\(ms / 3_600_000)h" }
        if ms % 60_000 == 0 { return "\(ms / 60_000)m" }
        if ms % 1000 == 0 { return "\(ms / 1000)s" }
        return "\(ms)ms"
    }
}

/// `jobq-admin schedule add|remove|pause|resume|trigger|tick`.
struct ScheduleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "schedule",
        abstract: "Create, change, pause, resume, trigger or remove a recurring job (docs/schedules.md).",
        subcommands: [Add.self, Remove.self, Pause.self, Resume.self, Trigger.self, Tick.self])

    /// `schedule add <queue> <id> (--cron EXPR [--tz ZONE] | --every DURATION) <job-name>`.
    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a schedule, or change the one with this id (the same spec again changes nothing).",
            discussion: """
                Each tick adds one job <id>@<tick in UTC>, however many workers advance the schedule. A changed spec takes effect from the next tick.

                  jobq-admin schedule add reports nightly --cron '0 2 * * *' --tz Europe/Berlin report --data '{"kind":"daily"}'
                  jobq-admin schedule add sync every-5m --every 5m sync --overlap skipIfRunning
                  jobq-admin schedule add ops beat --cron '*/10 * * * * *' ping --misfire catchUp:3 --jitter 2s
                """)

        @OptionGroup var global: GlobalOptions
        @Argument(help: "The queue.") var queue: String
        @Argument(help: "The schedule id (1–150 bytes).") var id: String
        @Argument(help: "The job name each tick adds (what handler runs it).") var name: String
        @Option(help: "A cron expression: 5 fields, or 6 with seconds first; @daily, @hourly…") var cron: String?
        @Option(help: "The cron expression's IANA time zone (default UTC).") var tz: String?
        @Option(help: "A fixed interval instead of cron: 30s, 5m, 1h.", transform: DurationArgument.parse) var every: DurationArgument?
        @Option(help: "With --every: the first tick (ISO 8601); default: ticks on round multiples of the interval.") var from: String?
        @Option(help: "Missed ticks: skip, fireOnce (default), catchUp:N.") var misfire: String?
        @Option(help: "A tick while the last run waits or runs: allow (default), skipIfRunning, cancelPrevious.") var overlap: String?
        @Option(help: "Start each tick's job up to this much late (spreads a fleet): 5s.", transform: DurationArgument.parse) var jitter: DurationArgument?
        @Option(
            name: .customLong("misfire-grace"), help: "How late a tick may be made before it is missed (default 1m).", transform: DurationArgument.parse)
        var misfireGrace: DurationArgument?
        @OptionGroup var job: JobFlags

        func validate() throws {
            if (cron == nil) == (every == nil) { throw ValidationError("give --cron EXPR or --every DURATION (one of them)") }
            if tz != nil && cron == nil { throw ValidationError("--tz goes with --cron") }
            if from != nil && every == nil { throw ValidationError("--from goes with --every") }
            if let from, JobQAdminDates.parse(from) == nil { throw ValidationError("--from \"\(Output.safe(from))\" is not an ISO 8601 time") }
            if let misfire, MisfirePolicy(misfire) == nil { throw ValidationError("--misfire: use skip, fireOnce or catchUp:N") }
            if let overlap, OverlapPolicy(rawValue: overlap) == nil {
                throw ValidationError("--overlap: use allow, skipIfRunning or cancelPrevious")
            }
        }

        func run() async throws {
            let spec: ScheduleSpec =
                if let cron { .cron(cron, timeZone: tz ?? "UTC") } else { .every(every!.value, startingAt: from.flatMap(JobQAdminDates.parse)) }
            var options = ScheduleOptions()
            if let misfire, let m = MisfirePolicy(misfire) { options.misfire = m }
            if let overlap, let o = OverlapPolicy(rawValue: overlap) { options.overlap = o }
            if let jitter { options.jitter = jitter.value }
            if let misfireGrace { options.misfireGrace = misfireGrace.value }
            let payload = try job.payload()
            let jobOptions = job.options
            let (result, schedule) = try await global.withClient { client in
                let q = try global.queue(queue, client)
                let r = try await q.upsertSchedule(id: id, spec, job: .init(name: name, payload: payload, options: jobOptions), options: options)
                return (r, try await q.schedule(id: id))
            }
            if global.json {
                var object: [String: Any] = ["change": result.change.rawValue]
                if let schedule { object["schedule"] = JSONShape.schedule(schedule) }
                Output.json(object)
            } else {
                Output.line("\(Output.safe(id))  \(result.change.rawValue)")
                if let schedule { Output.line(ScheduleText.block(schedule)) }
            }
        }
    }

    /// One id, one change: `remove`, `pause`, `resume`.
    struct Target: ParsableArguments {
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The queue.") var queue: String
        @Argument(help: "The schedule id.") var id: String

        /// Runs `change`; prints `<id>  <what>` or `{"id", "outcome"}`; not found → exit 4.
        func apply(_ done: String, _ already: String, _ change: @escaping @Sendable (JobQueue, String) async throws -> Bool) async throws {
            let changed = try await global.withClient { client in try await change(try global.queue(queue, client), id) }
            if global.json {
                Output.json(["id": id, "queue": queue, "outcome": changed ? done : already])
            } else {
                Output.line("\(Output.safe(id))  \(changed ? done : already)")
            }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete a schedule and its tick job not yet due (a run already due or running is left alone). Exit 4 when there is none.")
        @OptionGroup var target: Target
        func run() async throws {
            try await target.apply("removed", "") { q, id in
                guard try await q.removeSchedule(id: id) else {
                    throw AdminFailure(exitCode: 4, kind: "notFound", message: "no schedule \(Output.safe(id)) in queue \(Output.safe(q.name))")
                }
                return true
            }
        }
    }

    struct Pause: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop a schedule adding jobs (its tick job not yet due is removed).")
        @OptionGroup var target: Target
        func run() async throws { try await target.apply("paused", "already paused") { q, id in try await q.pauseSchedule(id: id) } }
    }

    struct Resume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Resume a paused schedule from its next tick after now.")
        @OptionGroup var target: Target
        func run() async throws { try await target.apply("resumed", "not paused") { q, id in try await q.resumeSchedule(id: id) } }
    }

    struct Trigger: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add one extra run of the schedule's job now; its ticks go on. Prints the job id.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The queue.") var queue: String
        @Argument(help: "The schedule id.") var id: String
        func run() async throws {
            let added = try await global.withClient { client in try await global.queue(queue, client).triggerSchedule(id: id) }
            if global.json {
                Output.json(["id": added.id, "schedule": id, "queue": queue, "state": added.state.rawValue])
            } else {
                Output.line("\(added.id)  added, \(added.state)")
            }
        }
    }

    struct Tick: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Advance the queue's due schedules once, as every worker does (for a fleet with no worker running yet).")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The queue.") var queue: String
        func run() async throws {
            let pass = try await global.withClient { client in try await global.queue(queue, client).advanceSchedules() }
            if global.json {
                Output.json(["queue": queue, "advanced": pass.advanced, "added": pass.added, "skipped": pass.skipped])
            } else {
                Output.line("advanced \(pass.advanced) schedule\(pass.advanced == 1 ? "" : "s"): \(pass.added) jobs added, \(pass.skipped) ticks skipped")
            }
        }
    }
}

enum JobQAdminDates {
    static func parse(_ text: String) -> Date? { Add.date(text) }
}

extension JSONShape {
    static func schedule(_ s: Schedule) -> [String: Any] {
        var spec: [String: Any] = [:]
        switch s.spec.kind {
        case .cron(let expression, let zone):
            spec = ["kind": "cron", "expression": expression, "timeZone": zone]
        case .every(let interval, let start):
            spec = ["kind": "every", "everyMs": Output.milliseconds(interval), "startingAt": Output.timestamp(start)]
        }
        func run(_ r: Schedule.Run?) -> Any {
            guard let r else { return NSNull() }
            return ["tick": Output.timestamp(r.tick), "jobId": r.jobID, "state": r.state?.rawValue ?? NSNull()] as [String: Any]
        }
        var object: [String: Any] = [
            "queue": s.queue, "id": s.id, "spec": spec, "description": s.spec.description, "paused": s.isPaused,
            "nextRuns": s.upcoming(3).map { Output.timestamp($0) }, "lastRun": run(s.lastRun), "latest": run(s.latest),
            "policies": [
                "misfire": s.options.misfire.description, "overlap": s.options.overlap.rawValue,
                "jitterMs": Output.milliseconds(s.options.jitter), "misfireGraceMs": Output.milliseconds(s.options.misfireGrace),
            ] as [String: Any],
            "job": [
                "name": s.jobName, "attempts": s.jobOptions.attempts, "priority": s.jobOptions.priority.value,
                "group": s.jobOptions.group ?? NSNull(), "payloadEncoding": s.payload.encoding.rawValue,
            ] as [String: Any],
            "fired": s.fired, "skipped": s.skipped, "lastSkipReason": s.lastSkipReason ?? NSNull(),
            "lastSkippedAt": Output.timestamp(s.lastSkippedAt), "createdAt": Output.timestamp(s.createdAt),
            "updatedAt": Output.timestamp(s.updatedAt),
        ]
        if s.payload.encoding == .json, let value = Output.jsonValue(s.payload.bytes) {
            (object["job"] as? [String: Any]).map {
                var j = $0
                j["payload"] = value
                object["job"] = j
            }
        }
        return object
    }
}
