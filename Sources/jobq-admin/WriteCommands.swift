import ArgumentParser
import Foundation
import JobQ

/// A duration flag: `500ms`, `5s`, `2m`, `1h`, `1d`.
struct DurationArgument: ExpressibleByArgument, CustomStringConvertible {
    let value: Duration
    let description: String
    init?(argument: String) {
        guard let d = Duration(parsing: argument) else { return nil }
        value = d
        description = argument
    }

    /// For `@Option(transform:)`: a bad duration names itself and the accepted forms.
    static func parse(_ text: String) throws -> DurationArgument {
        guard let d = DurationArgument(argument: text) else {
            throw ValidationError("\"\(text)\" is not a duration (use 500ms, 5s, 2m, 1h or 1d)")
        }
        return d
    }
}

/// Who asked, recorded with cancellations: `jobq-admin <user>@<host>`.
func operatorIdentity() -> String {
    let user = ProcessInfo.processInfo.environment["USER"] ?? String(getuid())
    return "jobq-admin \(user)@\(ProcessInfo.processInfo.hostName)"
}

/// Exit status of a command acting on several ids: 0 when every one did what was asked, 4 when
/// none exists, 1 otherwise (refused or partly failed).
func exitStatus(ok: Int, notFound: Int, total: Int) -> Int32 {
    if ok == total { return 0 }
    if notFound == total { return 4 }
    return 1
}

func finish(_ code: Int32) throws {
    if code != 0 { throw ExitCode(code) }
}

/// What happened to one id of a command acting on several.
enum IDOutcome {
    case done, refused, notFound
}

/// Prints one row (or JSON object, with `id` added) per id, then exits with the status of
/// ``exitStatus(ok:notFound:total:)``.
func reportOutcomes<O>(
    _ ids: [String], _ outcomes: [O], json: Bool,
    _ describe: (O) -> (IDOutcome, fields: [String: Any], text: String)
) throws {
    var ok = 0
    var missing = 0
    var objects: [[String: Any]] = []
    var rows: [[String]] = []
    for (id, outcome) in zip(ids, outcomes) {
        let (kind, fields, text) = describe(outcome)
        if kind == .done { ok += 1 } else if kind == .notFound { missing += 1 }
        objects.append(fields.merging(["id": id]) { a, _ in a })
        rows.append([id, text])
    }
    if json { Output.json(objects) } else { Output.line(Output.table(["ID", "OUTCOME"], rows)) }
    try finish(exitStatus(ok: ok, notFound: missing, total: ids.count))
}

/// The payload and options of a job, as `add` and `schedule add` take them.
struct JobFlags: ParsableArguments {
    @Option(help: "The payload, JSON text.") var data: String?
    @Option(name: .customLong("data-file"), help: "Read the payload from a file, or - for stdin (JSON unless --binary).") var dataFile: String?
    @Flag(help: "The --data-file payload is raw bytes, not JSON.") var binary = false
    @Option(help: "high, normal, low, or -1000…1000.") var priority: String?
    @Option(help: "Runs in all, first included (default 3).") var attempts: Int?
    @Option(help: "exponential:1s, linear:500ms, fixed:10s; optional :max=1h.") var backoff: String?
    @Option(help: "Per-attempt timeout: 30s, 5m.", transform: DurationArgument.parse) var timeout: DurationArgument?
    @Option(help: "The job's group (a tenant): takes rotate over groups, each under its own limits.") var group: String?
    @Option(
        name: .customLong("keep-completed"),
        help: "0: delete this job's record when it completes (0 is the only value; how many records a queue keeps is set with `jobq-admin retention`).")
    var keepCompleted: Int?
    @Option(name: .customLong("keep-failed"), help: "0: delete this job's record when it fails for good (0 is the only value; see `jobq-admin retention`).")
    var keepFailed: Int?

    func validate() throws {
        if data != nil && dataFile != nil { throw ValidationError("give --data or --data-file, not both") }
        if binary && dataFile == nil { throw ValidationError("--binary goes with --data-file") }
        if let priority {
            guard let p = JobPriority(parsing: priority), JobPriority.range.contains(p.value) else {
                throw ValidationError("--priority \"\(priority)\": use high, normal, low or a number in -1000…1000")
            }
        }
        if let backoff, Backoff(parsing: backoff) == nil {
            throw ValidationError("--backoff \"\(backoff)\": use exponential:1s, linear:500ms or fixed:10s (optionally :max=1h)")
        }
        if let attempts, !(1...1000).contains(attempts) { throw ValidationError("--attempts must be 1…1000, not \(attempts)") }
        for (flag, value) in [("--keep-completed", keepCompleted), ("--keep-failed", keepFailed)] {
            if let value, value != 0 {
                throw ValidationError(
                    "\(flag) takes 0 only (delete this job's record when it ends so), not \(value); how many records a queue keeps is set with `jobq-admin retention`"
                )
            }
        }
    }

    /// The options these flags give (id, delay and run-at are the caller's).
    var options: JobOptions {
        var options = JobOptions()
        if let priority { options.priority = JobPriority(parsing: priority) ?? .normal }
        if let attempts { options.attempts = attempts }
        if let backoff { options.backoff = Backoff(parsing: backoff) ?? .default }
        if let timeout { options.timeout = timeout.value }
        options.removeOnComplete = keepCompleted == 0
        options.removeOnFail = keepFailed == 0
        options.group = group
        return options
    }

    func payload() throws -> JobPayload {
        if let data {
            guard (try? JSONSerialization.jsonObject(with: Data(data.utf8), options: [.fragmentsAllowed])) != nil else {
                throw ValidationError("--data is not valid JSON: \(Output.shorten(data, 80))")
            }
            return .json(data)
        }
        guard let dataFile else { return .json("{}") }
        let bytes: Data
        if dataFile == "-" {
            bytes = FileHandle.standardInput.readDataToEndOfFile()
        } else {
            guard let read = FileManager.default.contents(atPath: dataFile) else {
                throw ValidationError("--data-file \(dataFile): cannot read it")
            }
            bytes = read
        }
        if binary { return .bytes(Array(bytes)) }
        guard (try? JSONSerialization.jsonObject(with: bytes, options: [.fragmentsAllowed])) != nil else {
            throw ValidationError("--data-file \(dataFile) is not valid JSON (use --binary for raw bytes)")
        }
        return JobPayload(bytes: Array(bytes), encoding: .json)
    }
}

/// `jobq-admin add <queue> <name>`.
struct Add: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Add a job; prints its id and whether it was created or existed already (--id dedups).")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The queue.") var queue: String
    @Argument(help: "The job name (what handler runs it).") var name: String
    @Option(help: "A job id of your own (dedup: adding an existing id adds nothing).") var id: String?
    @Option(help: "Run after this long: 500ms, 5s, 2m, 1h.", transform: DurationArgument.parse) var delay: DurationArgument?
    @Option(help: "Run at this time (ISO 8601, e.g. 2026-11-24T08:00:00Z).") var at: String?
    @OptionGroup var job: JobFlags

    func validate() throws {
        if delay != nil && at != nil { throw ValidationError("give --delay or --at, not both") }
        if let at, Self.date(at) == nil { throw ValidationError("--at \"\(at)\" is not an ISO 8601 time (e.g. 2026-11-24T08:00:00Z)") }
        if let at, let date = Self.date(at), date.timeIntervalSinceNow > 10 * 365 * 86400 {
            throw ValidationError("--at \(at) is more than 10 years away (the limit, as for --delay)")
        }
    }

    static func date(_ text: String) -> Date? {
        let f = ISO8601DateFormatter()
        if let d = f.date(from: text) { return d }
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.date(from: text)
    }

    func run() async throws {
        let payload = try job.payload()
        var options = job.options
        options.jobID = id
        options.delay = delay?.value
        options.runAt = at.flatMap(Self.date)
        let result = try await global.withClient { client in
            try await global.queue(queue, client).add(name: name, payload: payload, options: options)
        }
        if global.json {
            Output.json(["id": result.id, "created": result.created, "state": result.state.rawValue, "queue": queue])
        } else {
            Output.line("\(result.id)  \(result.created ? "created" : "existing"), \(result.state)")
        }
    }
}

/// `jobq-admin cancel <queue> <id>...`.
struct Cancel: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Cancel jobs: waiting and delayed ones at once, running ones through their worker.",
        discussion:
            "One line per id: cancelled, cancel requested (N listeners), already <state>, not found. Exit 0 when every job was cancelled or asked to stop, 4 when none exists, 1 otherwise."
    )

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The queue.") var queue: String
    @Argument(help: "Job ids.") var ids: [String]
    @Option(help: "Recorded as the cancel reason.") var reason = "cancelled by operator"

    func validate() throws {
        if ids.isEmpty { throw ValidationError("give at least one job id") }
    }

    func run() async throws {
        let outcomes = try await global.withClient { client in
            try await global.queue(queue, client).cancel(ids, reason: reason, requestedBy: operatorIdentity())
        }
        try reportOutcomes(ids, outcomes, json: global.json) { outcome in
            switch outcome {
            case .cancelled: (.done, ["outcome": "cancelled"], outcome.description)
            case .cancelRequested(let listeners): (.done, ["outcome": "cancelRequested", "listeners": listeners], outcome.description)
            case .alreadyFinished(let state): (.refused, ["outcome": "alreadyFinished", "state": state.rawValue], outcome.description)
            case .notFound: (.notFound, ["outcome": "notFound"], outcome.description)
            }
        }
    }
}

/// `jobq-admin retry <queue> <id>... | --all-failed`.
struct Retry: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Send failed or cancelled jobs back to waiting (attempts reset, last error kept).")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The queue.") var queue: String
    @Argument(help: "Job ids.") var ids: [String] = []
    @Flag(name: .customLong("all-failed"), help: "Every failed job the queue keeps.") var allFailed = false

    func validate() throws {
        if ids.isEmpty == !allFailed { throw ValidationError("give job ids or --all-failed (one of them)") }
    }

    func run() async throws {
        if allFailed {
            let count = try await global.withClient { client in
                try await global.queue(queue, client).inspector.retryAllFailed { _, remaining in Output.note("retrying… \(remaining) left") }
            }
            Output.endNote()
            if global.json { Output.json(["queue": queue, "retried": count]) } else { Output.line("retried \(count) failed job\(count == 1 ? "" : "s")") }
            return
        }
        let outcomes = try await global.withClient { client in try await global.queue(queue, client).inspector.retry(ids) }
        try reportOutcomes(ids, outcomes, json: global.json) { outcome in
            switch outcome {
            case .retried: (.done, ["outcome": "retried"], "retried")
            case .wrongState: (.refused, ["outcome": "wrongState"], "refused: only failed and cancelled jobs can be retried")
            case .notFound: (.notFound, ["outcome": "notFound"], "not found")
            }
        }
    }
}

/// `jobq-admin remove <queue> <id>...`.
struct Remove: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Delete jobs and their records; running jobs are refused (cancel them first).")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The queue.") var queue: String
    @Argument(help: "Job ids.") var ids: [String]

    func validate() throws {
        if ids.isEmpty { throw ValidationError("give at least one job id") }
    }

    func run() async throws {
        let outcomes = try await global.withClient { client in try await global.queue(queue, client).inspector.remove(ids) }
        try reportOutcomes(ids, outcomes, json: global.json) { outcome in
            switch outcome {
            case .removed(let state): (.done, ["outcome": "removed", "state": state.rawValue], "removed (was \(state))")
            case .isActive: (.refused, ["outcome": "isActive"], "refused: the job is running (cancel it first)")
            case .notFound: (.notFound, ["outcome": "notFound"], "not found")
            }
        }
    }
}

/// `jobq-admin clean <queue> --state S`.
struct Clean: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Delete finished records (oldest first), in bounded batches.")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The queue.") var queue: String
    @Option(help: "completed, failed or cancelled.") var state: String
    @Option(name: .customLong("older-than"), help: "Only records finished longer ago than this: 1h, 30m.", transform: DurationArgument.parse) var olderThan:
        DurationArgument?
    @Option(help: "At most this many.") var limit: Int?

    func validate() throws {
        guard let s = JobState(rawValue: state), s.isFinished else {
            throw ValidationError("--state \"\(state)\": clean takes completed, failed or cancelled (purge deletes waiting and delayed jobs)")
        }
        if let limit, limit < 1 { throw ValidationError("--limit must be 1 or more, not \(limit)") }
    }

    func run() async throws {
        let state = JobState(rawValue: state) ?? .completed
        let count = try await global.withClient { client in
            try await global.queue(queue, client).inspector.clean(state: state, olderThan: olderThan?.value ?? .zero, limit: limit) { _, remaining in
                Output.note("cleaning… \(remaining) left")
            }
        }
        Output.endNote()
        if global.json {
            Output.json(["queue": queue, "state": state.rawValue, "removed": count])
        } else {
            Output.line("removed \(count) \(state) job\(count == 1 ? "" : "s")")
        }
    }
}

/// `jobq-admin pause <queue>`.
struct Pause: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Stop workers taking jobs from a queue, or from one group of it (running jobs finish; adds continue).")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The queue.") var queue: String
    @Option(help: "Pause only this group; the others run on.") var group: String?

    func run() async throws {
        if let group {
            let changed = try await global.withClient { client in try await global.queue(queue, client).inspector.pauseGroup(group) }
            if global.json {
                Output.json(["queue": queue, "group": group, "paused": true, "changed": changed])
            } else {
                Output.line(changed ? "group \(Output.safe(group)) of \(queue) paused" : "group \(Output.safe(group)) of \(queue) was already paused")
            }
            return
        }
        let changed = try await global.withClient { client in try await global.queue(queue, client).inspector.pause() }
        if global.json {
            Output.json(["queue": queue, "paused": true, "changed": changed])
        } else {
            Output.line(changed ? "\(queue) paused" : "\(queue) was already paused")
        }
    }
}

/// `jobq-admin resume <queue>`.
struct Resume: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Let workers take jobs from a paused queue, or a paused group of it, again.")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The queue.") var queue: String
    @Option(help: "Resume only this group.") var group: String?

    func run() async throws {
        if let group {
            let changed = try await global.withClient { client in try await global.queue(queue, client).inspector.resumeGroup(group) }
            if global.json {
                Output.json(["queue": queue, "group": group, "paused": false, "changed": changed])
            } else {
                Output.line(changed ? "group \(Output.safe(group)) of \(queue) resumed" : "group \(Output.safe(group)) of \(queue) was not paused")
            }
            return
        }
        let changed = try await global.withClient { client in try await global.queue(queue, client).inspector.resume() }
        if global.json {
            Output.json(["queue": queue, "paused": false, "changed": changed])
        } else {
            Output.line(changed ? "\(queue) resumed" : "\(queue) was not paused")
        }
    }
}

/// Asks on a terminal; refuses without `--yes` otherwise.
func confirm(_ what: String, command: String, queue: String, yes: Bool) throws {
    if yes { return }
    guard isatty(0) == 1 else {
        // A usage error (2): the command is fine, it is missing the flag that says "I mean it".
        throw AdminFailure(
            exitCode: 2, kind: "usage", message: "\(command) needs --yes when stdin is not a terminal (\(what.prefix(1).lowercased() + what.dropFirst()))")
    }
    StandardStreams.err("\(what). Type the queue name (\(queue)) to go on: ")
    guard readLine()?.trimmingCharacters(in: .whitespaces) == queue else {
        throw AdminFailure(exitCode: 1, kind: "refused", message: "not confirmed; nothing was deleted")
    }
}

/// `jobq-admin purge <queue>` (alias `drain`).
struct Purge: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Delete every waiting and delayed job of a queue; prints the count.", aliases: ["drain"])

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The queue.") var queue: String
    @Flag(help: "Do not ask (needed when stdin is not a terminal).") var yes = false

    func run() async throws {
        try confirm("This deletes every waiting and delayed job of \(queue)", command: "purge", queue: queue, yes: yes)
        let count = try await global.withClient { client in
            try await global.queue(queue, client).inspector.purge { _, remaining in Output.note("deleting… \(remaining) left") }
        }
        Output.endNote()
        if global.json {
            Output.json(["queue": queue, "removed": count])
        } else {
            Output.line("deleted \(count) waiting and delayed job\(count == 1 ? "" : "s")")
        }
    }
}

/// `jobq-admin obliterate <queue>`.
struct Obliterate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Delete a queue entirely: every job, record and key.",
        discussion: "Needs a paused queue with no running job, unless --force.")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The queue.") var queue: String
    @Flag(help: "Even if the queue is not paused or has running jobs.") var force = false
    @Flag(help: "Do not ask (needed when stdin is not a terminal).") var yes = false

    func run() async throws {
        try confirm("This deletes queue \(queue) and all its jobs", command: "obliterate", queue: queue, yes: yes)
        let count = try await global.withClient { client in
            try await global.queue(queue, client).inspector.obliterate(force: force) { _, remaining in Output.note("deleting… \(remaining) left") }
        }
        Output.endNote()
        if global.json {
            Output.json(["queue": queue, "removed": count])
        } else {
            Output.line("obliterated \(queue): \(count) job\(count == 1 ? "" : "s") deleted")
        }
    }
}

/// `jobq-admin retention <queue>`.
struct Retention: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show or set how many finished records a queue keeps (defaults 10 completed, 5 failed, 10 cancelled).")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The queue.") var queue: String
    @Option(help: "Completed records to keep.") var completed: Int?
    @Option(help: "Failed records to keep.") var failed: Int?
    @Option(help: "Cancelled records to keep.") var cancelled: Int?

    func validate() throws {
        for (flag, value) in [("--completed", completed), ("--failed", failed), ("--cancelled", cancelled)] {
            if let value, value < 0 { throw ValidationError("\(flag) must be 0 or more, not \(value)") }
        }
    }

    func run() async throws {
        let limits = try await global.withClient { client in
            let inspector = try global.queue(queue, client).inspector
            try await inspector.setRetention(completed: completed, failed: failed, cancelled: cancelled)
            return try await inspector.retention()
        }
        if global.json {
            Output.json(["queue": queue, "completed": limits.completed, "failed": limits.failed, "cancelled": limits.cancelled])
        } else {
            Output.line("\(queue) keeps \(limits.completed) completed, \(limits.failed) failed, \(limits.cancelled) cancelled")
        }
    }
}
