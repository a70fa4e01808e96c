import ArgumentParser
import Foundation
import JobQ

/// `jobq-admin queues`: every queue with its counts, paused flag and live workers.
struct Queues: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Every queue: jobs per state, paused, live workers.")

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let (summaries, workers) = try await global.withClient { client in
            (try await QueueInspector.overview(client: client), try await WorkerInfo.list(client: client))
        }
        func workerCount(_ queue: String) -> Int {
            workers.filter { $0.queues.contains { $0 == queue || $0.hasPrefix(queue + ":") } }.count
        }
        let broken = summaries.filter { $0.counts == nil }
        if global.json {
            Output.json(
                summaries.map { q -> [String: Any] in
                    if let counts = q.counts { return JSONShape.counts(q.name, counts, workers: workerCount(q.name)) }
                    return [
                        "queue": q.name,
                        "broken": [
                            "kind": q.problem?.code.description ?? "unknown", "message": q.problem?.description ?? "",
                            "keys": q.brokenKeys,
                        ] as [String: Any],
                    ]
                })
        } else if summaries.isEmpty {
            Output.line("no queues (a queue appears with its first job)")
        } else {
            let rows = summaries.compactMap { q -> [String]? in
                guard let c = q.counts else { return [q.name, "—", "—", "—", "—", "—", "—", "BROKEN", String(workerCount(q.name))] }
                return [
                    q.name, String(c.waiting), String(c.delayed), String(c.active), String(c.completed),
                    String(c.failed), String(c.cancelled), c.paused ? "yes" : "no", String(workerCount(q.name)),
                ]
            }
            Output.line(
                Output.table(
                    ["QUEUE", "WAITING", "DELAYED", "ACTIVE", "COMPLETED", "FAILED", "CANCELLED", "PAUSED", "WORKERS"],
                    rows, numeric: [1, 2, 3, 4, 5, 6, 8]))
            for q in broken {
                Output.line("")
                Output.line("broken: \(Output.safe(q.name))")
                for key in q.brokenKeys { Output.line("  \(Output.safe(key))") }
                if let problem = q.problem { Output.line("  \(Output.safe(problem.description))") }
            }
        }
        if !broken.isEmpty {
            // Partly failed (exit 1): everything readable was printed.
            throw ExitCode(1)
        }
    }
}

/// `jobq-admin counts <queue>`.
struct Counts: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Jobs per state of one queue, and whether it is paused.")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The queue.") var queue: String

    func run() async throws {
        let (counts, workers) = try await global.withClient { client in
            (try await global.queue(queue, client).inspector.counts(), try await WorkerInfo.list(client: client, queue: queue).count)
        }
        if global.json {
            Output.json(JSONShape.counts(queue, counts, workers: workers))
            return
        }
        var rows = JobState.allCases.map { [$0.rawValue, String(counts[$0])] }
        rows.append(["paused", counts.paused ? "yes" : "no"])
        rows.append(["workers", String(workers)])
        Output.line(Output.table(["STATE", "JOBS"], rows, numeric: [1]))
        if !counts.limits.isEmpty {
            let l = counts.limits
            var parts: [String] = []
            if let r = l.rate { parts.append("rate \(r) (\(counts.startsInWindow) in the window)") }
            if let n = l.concurrency { parts.append("concurrency \(n)") }
            if let n = l.maxWaiting { parts.append("max waiting \(n)") }
            if let t = l.throttledUntil { parts.append("throttled until \(Output.relative(t))") }
            if let r = l.groupRate { parts.append("group rate \(r)") }
            if let n = l.groupConcurrency { parts.append("group concurrency \(n)") }
            Output.line("limits: \(parts.joined(separator: ", ")); holding back \(Output.limitLine(counts))")
        }
        if counts.groups > 0 {
            Output.line(
                "groups: \(counts.groups) (\(counts.groupsReady) ready, \(counts.groupsHeld) held by their limits\(counts.groupsHeld > 0 ? ", \(counts.waitingForLimit) jobs in them" : ""))"
            )
        }
    }
}

/// `jobq-admin list <queue>`.
struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Jobs of a queue in run order (finished ones newest first).",
        discussion: "Without --state: active, waiting, delayed, failed, cancelled, then completed jobs, up to --limit in all.")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The queue.") var queue: String
    @Option(help: "waiting, delayed, active, completed, failed or cancelled.") var state: String?
    @Option(help: "Only jobs with this name.") var name: String?
    @Option(help: "Only jobs of this group (waiting: the group's line in run order).") var group: String?
    @Option(help: "At most this many jobs (1–10000).") var limit = 50
    @Option(help: "Skip this many jobs first.") var offset = 0

    func validate() throws {
        if let state, JobState(rawValue: state) == nil {
            throw ValidationError("unknown state \"\(state)\" (use one of: \(JobState.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        guard (1...10_000).contains(limit) else { throw ValidationError("--limit must be 1…10000, not \(limit)") }
        guard offset >= 0 else { throw ValidationError("--offset must be 0 or more, not \(offset)") }
    }

    func run() async throws {
        let states: [JobState] = state.flatMap(JobState.init(rawValue:)).map { [$0] } ?? [.active, .waiting, .delayed, .failed, .cancelled, .completed]
        let jobs = try await global.withClient { client in
            let inspector = try global.queue(queue, client).inspector
            var out: [Job] = []
            var skip = offset
            let counts = states.count > 1 ? try await inspector.counts() : nil
            for s in states where out.count < limit {
                if let counts, skip >= counts[s] {
                    skip -= counts[s]
                    continue
                }
                let page = try await inspector.jobs(state: s, name: name, group: group, limit: limit - out.count, offset: skip)
                skip = 0
                out += page
            }
            return out
        }
        if global.json {
            Output.json(jobs.map(JSONShape.job))
            return
        }
        guard !jobs.isEmpty else {
            Output.line("no \(state.map { "\($0) " } ?? "")jobs\(name.map { " named \($0)" } ?? "") in \(queue)")
            return
        }
        let now = Date()
        let rows = jobs.map { job -> [String] in
            var detail: String
            switch job.state {
            case .waiting:
                detail = [job.options.group.map { "group \($0)" }, job.options.priority == .normal ? nil : "priority \(job.options.priority)"]
                    .compactMap { $0 }.joined(separator: ", ")
            case .delayed: detail = "due " + Output.relative(job.dueAt, now: now)
            case .active:
                detail = "on \(job.workerID ?? "?")"
                if let p = job.progress { detail += " " + Output.bar(p.percent, width: 10) + (p.message.isEmpty ? "" : " " + Output.shorten(p.message, 30)) }
                if job.cancelRequested { detail += " (cancel requested)" }
            case .completed: detail = job.result.map { Output.excerpt($0, limit: 50) } ?? ""
            case .failed, .cancelled: detail = job.error.map { Output.shorten($0.description.replacingOccurrences(of: "\n", with: " "), 60) } ?? ""
            }
            let when = job.state.isFinished ? job.finishedAt : (job.state == .active ? job.startedAt : job.createdAt)
            return [job.id, job.name, job.state.rawValue, "\(job.attemptsMade)/\(job.options.attempts)", Output.relative(when, now: now), detail]
        }
        Output.line(Output.table(["ID", "NAME", "STATE", "ATTEMPTS", "SINCE", "DETAIL"], rows))
    }
}

/// `jobq-admin inspect <queue> <id>`.
struct Inspect: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Everything about one job. Exit 4 when there is no such job.")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The queue.") var queue: String
    @Argument(help: "The job id.") var id: String

    func run() async throws {
        let found = try await global.withClient { client in try await global.queue(queue, client).inspector.job(id) }
        guard let job = found else {
            throw AdminFailure(
                exitCode: 4, kind: "notFound",
                message: "no job \(id) in queue \(queue) (finished records are kept only up to the queue's retention)")
        }
        if global.json {
            Output.json(JSONShape.job(job))
            return
        }
        let now = Date()
        func when(_ d: Date?) -> String { d.map { "\(Output.timestamp($0)) (\(Output.relative($0, now: now)))" } ?? "—" }
        var rows: [[String]] = [
            ["id", job.id], ["queue", job.queue], ["name", job.name],
            ["state", job.state.rawValue + (job.cancelRequested ? " (cancel requested)" : "")],
            ["attempts", "\(job.attemptsMade) of \(job.options.attempts)" + (job.stallCount > 0 ? ", stalled \(job.stallCount)×" : "")],
            [
                "payload",
                job.payload.encoding == .json
                    ? Output.shorten(job.payload.text, 400) : "<\(job.payload.bytes.count) bytes> " + Data(job.payload.bytes.prefix(48)).base64EncodedString(),
            ],
            [
                "options",
                "priority \(job.options.priority), backoff \(job.options.backoff), timeout \(Output.span(Double(Output.milliseconds(job.options.timeout)) / 1000)), max stalls \(job.options.maxStalls)"
                    + (job.options.removeOnComplete ? ", remove on complete" : "") + (job.options.removeOnFail ? ", remove on fail" : "")
                    + (job.options.group.map { ", group \($0)" } ?? ""),
            ],
            ["progress", job.progress.map { Output.bar($0.percent) + ($0.message.isEmpty ? "" : "  " + $0.message) } ?? "—"],
            ["checkpoint", job.checkpoint.map { "\($0.count) bytes" } ?? "—"],
            ["result", job.result.map { Output.excerpt($0, limit: 400) } ?? "—"],
            ["error", job.error.map(\.description) ?? "—"],
            ["previous error", job.previousError.map(\.description) ?? "—"],
            ["created", when(job.createdAt)], ["due", when(job.dueAt)], ["started", when(job.startedAt)], ["finished", when(job.finishedAt)],
            ["worker", job.workerID ?? "—"], ["execution", job.executionID ?? "—"],
        ]
        if let schedule = job.scheduleID {
            rows.append(["schedule", schedule + (job.scheduledFor.map { ", tick \(Output.timestamp($0))" } ?? ", triggered by hand")])
        }
        if job.cancelRequested || job.state == .cancelled {
            rows.append(["cancel", "\(job.cancelReason ?? "cancelled") by \(job.cancelRequestedBy ?? "?")"])
        }
        let width = rows.map { $0[0].count }.max() ?? 0
        for row in rows {
            let value = row[1].replacingOccurrences(of: "\n", with: "\n" + String(repeating: " ", count: width + 2))
            Output.line(row[0].padding(toLength: width, withPad: " ", startingAt: 0) + "  " + value)
        }
    }
}

/// `jobq-admin workers`: the live workers, and run-time control of one.
struct Workers: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Live workers, and pausing, resuming or resizing one at run time.",
        subcommands: [WorkersList.self, WorkerPause.self, WorkerResume.self, WorkerConcurrency.self], defaultSubcommand: WorkersList.self)
}

/// `jobq-admin workers [list] [<queue>]`.
struct WorkersList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "Live workers, from their heartbeats (gone 3 beats after a worker stops), with each one's state.")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "Only workers serving this queue.") var queue: String?

    func run() async throws {
        let workers = try await global.withClient { client in
            if let queue { _ = try global.queue(queue, client) }
            return try await WorkerInfo.list(client: client, queue: queue)
        }
        if global.json {
            Output.json(workers.map(JSONShape.worker))
            return
        }
        guard !workers.isEmpty else {
            Output.line("no live workers" + (queue.map { " for \($0)" } ?? ""))
            return
        }
        let now = Date()
        let rows = workers.map { w in
            [
                w.id, w.host, String(w.pid), w.queues.joined(separator: ","), w.state, "\(w.active)/\(w.concurrency)",
                Output.relative(w.started, now: now), Output.relative(w.lastSeen, now: now),
            ]
        }
        // Fits the terminal (100 columns when not one): ids, hosts and queue lists are cut
        // with …; --json has them whole.
        Output.line(
            Output.table(
                ["ID", "HOST", "PID", "QUEUES", "STATE", "ACTIVE", "STARTED", "LAST SEEN"], rows, numeric: [2, 5],
                maxWidth: Output.terminalSize()?.columns ?? 100, shrinkable: [0, 1, 3]))
    }
}

/// `jobq-admin workers pause <worker-id>`.
struct WorkerPause: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pause", abstract: "Pause one worker, quietly: it finishes what runs and takes nothing (its queues go on elsewhere).")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The worker's id (jobq-admin workers lists them).") var workerID: String

    func run() async throws {
        let heard = try await global.withClient { client in try await WorkerInfo.pause(workerID, client: client) }
        WorkerControlOutput.report(workerID, "pause", heard: heard, json: global.json, fields: ["paused": true])
    }
}

/// `jobq-admin workers resume <worker-id>`.
struct WorkerResume: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "resume", abstract: "Let a paused worker take jobs again.")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The worker's id.") var workerID: String

    func run() async throws {
        let heard = try await global.withClient { client in try await WorkerInfo.resume(workerID, client: client) }
        WorkerControlOutput.report(workerID, "resume", heard: heard, json: global.json, fields: ["paused": false])
    }
}

/// `jobq-admin workers concurrency <worker-id> <n>`.
struct WorkerConcurrency: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "concurrency", abstract: "Change how many jobs one worker runs at once (fewer take effect as running jobs end).")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The worker's id.") var workerID: String
    @Argument(help: "Jobs at once, 1…10000.") var slots: Int

    func validate() throws {
        guard (1...10_000).contains(slots) else { throw ValidationError("concurrency must be 1…10000, not \(slots)") }
    }

    func run() async throws {
        let heard = try await global.withClient { client in try await WorkerInfo.setConcurrency(workerID, to: slots, client: client) }
        WorkerControlOutput.report(workerID, "concurrency \(slots)", heard: heard, json: global.json, fields: ["concurrency": slots])
    }
}

enum WorkerControlOutput {
    static func report(_ workerID: String, _ what: String, heard: Int, json: Bool, fields: [String: Any]) {
        if json {
            var object: [String: Any] = ["worker": workerID, "requested": what, "nudged": heard > 0]
            object.merge(fields) { $1 }
            Output.json(object)
        } else {
            let when = heard > 0 ? "it applies it now" : "it applies it at its next heartbeat"
            Output.line("\(Output.safe(workerID)): \(what) requested; \(when)")
        }
    }
}
