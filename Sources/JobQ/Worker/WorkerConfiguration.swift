import Foundation

/// How a ``Worker`` runs: which queues, how many jobs at once, lease and shutdown timing.
public struct WorkerConfiguration: Sendable {
    /// A queue served by the worker and its weight: the worker's slots are shared by weight
    /// (`emails:3, reports:1` gives emails 3/4 of the slots while both have work).
    public struct QueueShare: Sendable, Hashable {
        public var name: String
        public var weight: Int

        public init(_ name: String, weight: Int = 1) {
            self.name = name
            self.weight = weight
        }

        /// Parses `NAME` or `NAME:WEIGHT`.
        /// `NAME:WEIGHT`, or `NAME` alone (weight 1). The text after the last colon is the weight
        /// whenever it is a number, so a queue whose name itself ends in `:<digits>` is given with
        /// its weight: `a:5:1` serves queue `a:5`; `a:5` serves queue `a` with weight 5.
        public init?(parsing text: String) {
            if let colon = text.lastIndex(of: ":"), let weight = Int(text[text.index(after: colon)...]) {
                self.init(String(text[..<colon]), weight: weight)
            } else {
                self.init(text)
            }
        }
    }

    public var queues: [QueueShare]
    /// Jobs run at once by this process, across all its queues (1…10,000).
    public var concurrency: Int
    /// Lease length L (`docs/job-lifecycle.md`): renewed every L/3, the reaper runs every L/4, a worker that has
    /// not renewed for 5L/6 fires its own jobs' tokens.
    public var lease: Duration = .seconds(10)
    /// On shutdown: how long running jobs may take to finish before they are requeued.
    public var shutdownGrace: Duration = .seconds(30)
    /// Longest blocking wait on a queue's marker (a cap: wake-ups come from the marker and timers).
    public var maxBlockTimeout: Duration = .seconds(5)
    /// How often a job's progress is written at most (updates in between are coalesced).
    public var progressInterval: Duration = .milliseconds(250)
    /// This worker's id in leases, logs, events and heartbeats.
    public var workerID: String
    /// Limits and stream cap (shared with producers).
    public var settings = QueueSettings()
    /// Advance the queues' schedules (`docs/schedules.md`). Any number of workers may: each
    /// tick still becomes one job. Off, this worker only runs jobs.
    public var runsSchedules = true

    public init(queues: [QueueShare], concurrency: Int = 8, workerID: String? = nil) {
        self.queues = queues
        self.concurrency = concurrency
        self.workerID = workerID ?? Self.defaultWorkerID()
    }

    public static func defaultWorkerID() -> String {
        let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "host"
        let suffix = String(UInt32.random(in: 0...UInt32.max), radix: 36)
        return "\(host):\(ProcessInfo.processInfo.processIdentifier):\(suffix)"
    }

    /// Checks the ranges; the message names the setting, its value and what is expected.
    public func validate() throws(JobQError) {
        func bad(_ text: String) -> JobQError { JobQError(.invalidOptions, detail: text) }
        guard !queues.isEmpty else { throw bad("queues: at least one queue is needed") }
        for q in queues {
            try QueueKeys.validate(queue: q.name)
            guard (1...1000).contains(q.weight) else { throw bad("queue \(q.name): weight \(q.weight) is outside 1…1000") }
        }
        guard Set(queues.map(\.name)).count == queues.count else { throw bad("queues: a queue is listed twice") }
        guard (1...10_000).contains(concurrency) else { throw bad("concurrency: \(concurrency) is outside 1…10000") }
        guard lease >= .milliseconds(300), lease <= .seconds(3600) else { throw bad("lease: must be 300 ms…1 h") }
        guard shutdownGrace >= .zero else { throw bad("shutdownGrace: must be 0 or more") }
        guard maxBlockTimeout >= .milliseconds(100), maxBlockTimeout <= .seconds(60) else { throw bad("maxBlockTimeout: must be 100 ms…60 s") }
        guard !workerID.isEmpty, workerID.utf8.count <= 200 else { throw bad("workerID: 1…200 bytes") }
        // It is written into logs, events and `jobq-admin workers` rows: one line, printable.
        guard !workerID.unicodeScalars.contains(where: { $0.properties.generalCategory == .control || $0.properties.generalCategory == .format }) else {
            throw bad("workerID: no control or format characters (newlines, escapes)")
        }
    }

    /// Slots each queue may fill while others have work: its weighted share of `concurrency`,
    /// at least 1.
    func quotas(concurrency: Int? = nil) -> [Int] {
        let slots = concurrency ?? self.concurrency
        let total = queues.reduce(0) { $0 + $1.weight }
        return queues.map { max(1, Int((Double(slots) * Double($0.weight) / Double(total)).rounded(.up))) }
    }
}
