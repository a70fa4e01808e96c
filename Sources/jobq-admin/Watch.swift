import ArgumentParser
import Foundation
import JobQ
import Synchronization

/// `jobq-admin watch [<queue>...]`: a live screen of counts, rates and running jobs.
struct Watch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Live screen: counts, rates per second, running jobs with progress and ETA. q quits.",
        discussion: """
            Rates come from each queue's event stream (one connection per queue, at most 16 queues).
            With --json, one JSON object per refresh, one per line.
            """)

    @OptionGroup var global: GlobalOptions
    @Argument(help: "Queues to watch (default: every queue).") var queues: [String] = []
    @Option(help: "Time between refreshes: 1s, 500ms.", transform: DurationArgument.parse) var interval = DurationArgument(argument: "1s")!
    @Option(help: "Stop after this many refreshes (0: until q or Ctrl-C).") var iterations = 0
    @Option(name: .customLong("active-limit"), help: "Running jobs shown per queue.") var activeLimit = 10

    func validate() throws {
        guard interval.value >= .milliseconds(100) else { throw ValidationError("--interval must be 100ms or more") }
        guard iterations >= 0 else { throw ValidationError("--iterations must be 0 or more") }
        guard (0...1000).contains(activeLimit) else { throw ValidationError("--active-limit must be 0…1000") }
    }

    /// Events counted per queue since the last refresh.
    final class Rates: Sendable {
        struct Tally { var completed = 0, failed = 0, retried = 0, added = 0 }
        let tallies = Mutex<[String: Tally]>([:])
        func count(_ queue: String, _ kind: QueueEvent.Kind) {
            tallies.withLock { t in
                var tally = t[queue] ?? Tally()
                switch kind {
                case .completed: tally.completed += 1
                case .failed: tally.failed += 1
                case .retrying: tally.retried += 1
                case .added, .delayed: tally.added += 1
                default: return
                }
                t[queue] = tally
            }
        }
        func take() -> [String: Tally] {
            tallies.withLock { t in
                defer { t = [:] }
                return t
            }
        }
    }

    func run() async throws {
        let terminal = Terminal()
        defer { terminal.restore() }
        let quit = terminal.watchForQuit()
        try await global.withClient { client in
            for name in queues { _ = try global.queue(name, client) }
            let rates = Rates()
            var readers: [String: Task<Void, Never>] = [:]
            defer { for r in readers.values { r.cancel() } }
            var last = ContinuousClock.now
            var refresh = 0
            while iterations == 0 || refresh < iterations {
                refresh += 1
                var names = queues
                var broken: [(String, String)] = []
                if queues.isEmpty {
                    for summary in try await QueueInspector.overview(client: client) {
                        if let problem = summary.problem, problem.code == .invalidQueueName {
                            broken.append((summary.name, problem.description))
                        } else {
                            names.append(summary.name)
                        }
                    }
                }
                for name in names.prefix(16) where readers[name] == nil {
                    let queue = try global.queue(name, client)
                    readers[name] = Task {
                        do {
                            for try await element in queue.events(from: .end) {
                                if case .event(let e) = element { rates.count(name, e.kind) }
                            }
                        } catch {}
                    }
                }
                var counts: [(String, JobCounts)] = []
                var active: [Job] = []
                for name in names {
                    let inspector = try global.queue(name, client).inspector
                    do {
                        counts.append((name, try await inspector.counts()))
                        if activeLimit > 0 { active += try await inspector.jobs(state: .active, limit: activeLimit) }
                    } catch let error as JobQError where error.code != .redis {
                        // One broken queue is shown as such; the others keep updating.
                        broken.append((name, error.description))
                    }
                }
                let workers = try await WorkerInfo.list(client: client)
                let now = ContinuousClock.now
                let seconds = max(0.001, (now - last).seconds)
                last = now
                let tallies = rates.take()
                if global.json {
                    terminal.writeLine(
                        Self.jsonLine(counts: counts, broken: broken, tallies: tallies, seconds: seconds, active: active, workers: workers.count))
                } else {
                    terminal.redraw(
                        screen(client: client, counts: counts, broken: broken, tallies: tallies, seconds: seconds, active: active, workers: workers))
                }
                if await quit.wait(upTo: interval.value) { break }
            }
        }
    }

    static func jsonLine(
        counts: [(String, JobCounts)], broken: [(String, String)] = [], tallies: [String: Rates.Tally], seconds: Double, active: [Job], workers: Int
    ) -> String {
        let object: [String: Any] = [
            "time": Output.timestamp(Date()),
            "broken": broken.map { ["queue": $0.0, "message": $0.1] },
            "workers": workers,
            "queues": counts.map { name, c -> [String: Any] in
                var o = JSONShape.counts(name, c)
                let t = tallies[name] ?? Rates.Tally()
                o["completedPerSecond"] = Double(t.completed) / seconds
                o["failedPerSecond"] = Double(t.failed) / seconds
                o["retriedPerSecond"] = Double(t.retried) / seconds
                o["addedPerSecond"] = Double(t.added) / seconds
                return o
            },
            "active": active.map { job -> [String: Any] in
                [
                    "queue": job.queue, "id": job.id, "name": job.name, "workerId": job.workerID ?? NSNull(),
                    "percent": job.progress?.percent ?? NSNull(), "message": job.progress?.message ?? NSNull(),
                    "startedAt": Output.timestamp(job.startedAt),
                ]
            },
        ]
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    func screen(
        client: RedisClient, counts: [(String, JobCounts)], broken: [(String, String)] = [], tallies: [String: Rates.Tally], seconds: Double, active: [Job],
        workers: [WorkerInfo],
        size: (columns: Int, rows: Int)? = Output.terminalSize()
    ) -> String {
        let clock = DateFormatter()
        clock.dateFormat = "HH:mm:ss"
        var lines: [String] = [
            "jobq watch — \(client.configuration.redactedURL) — \(clock.string(from: Date())) — \(workers.count) worker\(workers.count == 1 ? "" : "s") — q quits",
            "",
        ]
        // On a terminal the screen fits its rows: queues first (most jobs waiting or running
        // first when they do not all fit), then running jobs, each with a "… more" line.
        let height = size?.rows ?? Int.max
        let activeShown = size == nil ? active.count : min(active.count, max(0, (height - 8) / 3))
        let brokenShown = size == nil ? broken.count : min(broken.count, 3)
        let queueRoom = size == nil ? counts.count : max(1, height - 7 - brokenShown - (activeShown > 0 ? activeShown + 1 : 0))
        if counts.isEmpty {
            lines.append("no queues yet (a queue appears with its first job)")
        } else {
            func rate(_ n: Int) -> String { String(format: "%.1f", Double(n) / seconds) }
            var shown = counts
            if shown.count > queueRoom {
                shown = Array(counts.sorted { ($0.1.waiting + $0.1.active, $1.0) > ($1.1.waiting + $1.1.active, $0.0) }.prefix(max(1, queueRoom - 1)))
            }
            let rows = shown.map { name, c -> [String] in
                let t = tallies[name] ?? Rates.Tally()
                return [
                    name, String(c.waiting), String(c.delayed), String(c.active), String(c.completed), String(c.failed), String(c.cancelled),
                    Self.status(c), rate(t.added), rate(t.completed), rate(t.failed), rate(t.retried),
                ]
            }
            lines += Output.table(
                ["QUEUE", "WAITING", "DELAYED", "ACTIVE", "COMPLETED", "FAILED", "CANCELLED", "", "ADDED/S", "DONE/S", "FAILED/S", "RETRIED/S"],
                rows, numeric: [1, 2, 3, 4, 5, 6, 8, 9, 10, 11], maxWidth: size?.columns, shrinkable: [0]
            ).split(separator: "\n").map(String.init)
            if shown.count < counts.count { lines.append("… \(counts.count - shown.count) more queues (a taller terminal, or --queue NAME, shows them)") }
        }
        for (name, problem) in broken.prefix(brokenShown) {
            lines.append(Output.safe("BROKEN \(name): \(problem)"))
        }
        if broken.count > brokenShown { lines.append("… \(broken.count - brokenShown) more broken queues (jobq-admin queues lists them)") }
        lines.append("")
        lines.append("running jobs: \(active.count)")
        if activeShown > 0 {
            let now = Date()
            let rows = active.prefix(activeShown).map { job -> [String] in
                let running = job.startedAt.map { now.timeIntervalSince($0) } ?? 0
                var eta = "—"
                if let p = job.progress?.percent, p > 0, p < 100 { eta = Output.span(running * (100 - p) / p) }
                let progress = job.progress.map { Output.bar($0.percent) + ($0.message.isEmpty ? "" : " " + Output.shorten($0.message, 30)) } ?? "—"
                return [job.queue, job.id, job.name, job.workerID ?? "?", Output.span(running), progress, eta]
            }
            lines += Output.table(["QUEUE", "ID", "NAME", "WORKER", "RUNNING", "PROGRESS", "ETA"], rows, maxWidth: size?.columns, shrinkable: [0, 2, 3, 5])
                .split(separator: "\n").map(String.init)
            if activeShown < active.count { lines.append("… \(active.count - activeShown) more running") }
        }
        if let size {
            // Never wider than the terminal (a wrapped line would scroll the screen).
            lines = lines.map { Output.clip($0, size.columns) }
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

extension Watch {
    /// A queue's state column: PAUSED, LIMITED (the limit), groups its limits hold, or nothing.
    static func status(_ c: JobCounts) -> String {
        if c.paused { return "PAUSED" }
        if let by = c.limitedBy { return "LIMITED (\(by))" }
        if c.groupsHeld > 0 { return "\(c.groupsHeld) GROUP\(c.groupsHeld == 1 ? "" : "S") HELD" }
        return ""
    }
}

/// The terminal while watching: raw keys (for q) and a hidden cursor, restored on every exit
/// path (q, Ctrl-C, an error).
final class Terminal: Sendable {
    private let saved: Mutex<termios?>
    let isTerminal = isatty(1) == 1
    private let restored = Atomic<Bool>(false)

    init() {
        var original = termios()
        if isatty(0) == 1, tcgetattr(0, &original) == 0 {
            var raw = original
            raw.c_lflag &= ~tcflag_t(ICANON | ECHO)
            withUnsafeMutableBytes(of: &raw.c_cc) { cc in
                cc[Int(VMIN)] = 1
                cc[Int(VTIME)] = 0
            }
            tcsetattr(0, TCSANOW, &raw)
            saved = Mutex(original)
        } else {
            saved = Mutex(nil)
        }
        if isTerminal { write("\u{1b}[?25l") }
    }

    func restore() {
        guard !restored.exchange(true, ordering: .acquiringAndReleasing) else { return }
        if var original = saved.withLock({ $0 }) { tcsetattr(0, TCSANOW, &original) }
        if isTerminal { write("\u{1b}[?25h") }
    }

    func write(_ text: String) {
        StandardStreams.out(text)
    }

    func writeLine(_ text: String) { write(text + "\n") }

    /// Clears and draws the whole screen (plain text when stdout is not a terminal).
    func redraw(_ screen: String) {
        if isTerminal {
            write("\u{1b}[H\u{1b}[2J" + screen.replacingOccurrences(of: "\n", with: "\r\n"))
        } else {
            write(screen + "\n")
        }
    }

    /// Fires on `q` typed at the terminal or on SIGINT/SIGTERM.
    func watchForQuit() -> QuitSignal {
        let quit = QuitSignal()
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { quit.fire() }
            source.resume()
            quit.retain(source)
        }
        if isatty(0) == 1 {
            let reader = Thread {
                var byte: UInt8 = 0
                while read(0, &byte, 1) == 1 {
                    if byte == UInt8(ascii: "q") || byte == UInt8(ascii: "Q") {
                        quit.fire()
                        return
                    }
                }
            }
            reader.name = "jobq-admin-keys"
            reader.start()
        }
        return quit
    }
}

/// A one-way flag with a timed wait.
final class QuitSignal: Sendable {
    private struct State {
        var fired = false
        var waiters: [CheckedContinuation<Void, Never>] = []
        var sources: [RetainedSource] = []
    }
    private let state = Mutex(State())

    /// Keeps a signal source alive (a released source stops delivering). Dispatch sources are
    /// thread-safe; the wrapper only says so to the compiler.
    struct RetainedSource: @unchecked Sendable { let source: any DispatchSourceSignal }

    func retain(_ source: any DispatchSourceSignal) {
        let retained = RetainedSource(source: source)
        state.withLock { $0.sources.append(retained) }
    }

    func fire() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.fired = true
            defer { s.waiters = [] }
            return s.waiters
        }
        for w in waiters { w.resume() }
    }

    /// True when fired before `timeout` passed.
    func wait(upTo timeout: Duration) async -> Bool {
        if state.withLock({ $0.fired }) { return true }
        let timer = Task {
            try? await Task.sleep(for: timeout)
            self.wake()
        }
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now = state.withLock { s -> Bool in
                if s.fired { return true }
                s.waiters.append(c)
                return false
            }
            if now { c.resume() }
        }
        timer.cancel()
        return state.withLock { $0.fired }
    }

    private func wake() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            defer { s.waiters = [] }
            return s.waiters
        }
        for w in waiters { w.resume() }
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
