/// A queue's events as an `AsyncSequence`, read from its capped stream with a blocking `XREAD`
/// (no polling). When entries were trimmed before this reader got to them it yields `.gap`
/// with how many it missed, then carries on from the oldest entry kept.
///
/// ```swift
/// for try await element in queue.events() {
///     if case .event(let e) = element, e.kind == .failed { print(e.jobID, e.failure?.reason ?? "") }
/// }
/// ```
/// Each iterator holds one blocking connection of its own, closed when the iterator goes away.
public struct QueueEvents: AsyncSequence, Sendable {
    public enum Element: Sendable, Hashable {
        case event(QueueEvent)
        /// `missed` events were trimmed (the stream is capped) before they could be read.
        case gap(missed: Int)
    }

    public enum Start: Sendable, Hashable {
        /// Only events after now.
        case end
        /// From the oldest event the stream still holds.
        case beginning
    }

    let core: QueueCore
    let start: Start

    public func makeAsyncIterator() -> Iterator {
        Iterator(reader: QueueEventReader(core: core), start: start)
    }

    public struct Iterator: AsyncIteratorProtocol {
        private let box: Box
        private var buffer: [Element] = []
        private var started = false
        private let start: Start

        init(reader: QueueEventReader, start: Start) {
            self.box = Box(reader: reader)
            self.start = start
        }

        public mutating func next() async throws -> Element? {
            if !started {
                try await box.reader.start(at: start)
                started = true
            }
            while buffer.isEmpty {
                if Task.isCancelled { return nil }
                buffer = try await box.reader.next(wait: .seconds(5))
            }
            return buffer.removeFirst()
        }

        /// Closes the reader's connection when the last copy of the iterator goes away.
        private final class Box: Sendable {
            let reader: QueueEventReader
            init(reader: QueueEventReader) { self.reader = reader }
            deinit {
                let reader = reader
                Task { await reader.close() }
            }
        }
    }
}

/// Reads a queue's events after a position and detects gaps exactly: the stream only loses
/// entries at its head (trimming), so when the oldest entry kept is newer than our position,
/// the entries between are numbered by `entries-added − length` (see `readEvents-1.lua`).
actor QueueEventReader {
    private let core: QueueCore
    private var blocking: RedisBlockingClient?
    /// The last entry read ("0-0" before any).
    private var cursor = StreamID.zero
    /// The number (1-based, counted by `entries-added`) of the next entry we expect.
    private var nextNumber = 1

    init(core: QueueCore) {
        self.core = core
    }

    func start(at start: QueueEvents.Start) async throws(JobQError) {
        let snapshot = try await read(after: "$", count: 0)
        switch start {
        case .end:
            cursor = snapshot.lastGenerated
            nextNumber = snapshot.entriesAdded + 1
        case .beginning:
            cursor = .zero
            nextNumber = snapshot.entriesAdded - snapshot.length + 1
        }
    }

    /// What arrived after the position, waiting up to `wait` for something to arrive.
    func next(wait: Duration) async throws(JobQError) -> [QueueEvents.Element] {
        let now = try await readAvailable()
        if !now.isEmpty { return now }
        do {
            let client = try await blockingClient()
            let ms = max(1, min(wait, client.maxBlockTimeout).milliseconds)
            let reply = try await client.send(RedisCommand("XREAD", "COUNT", 1, "BLOCK", ms, "STREAMS", core.keys.events, cursor.description))
            if reply.errorCode == "MOVED" || reply.errorCode == "ASK" {
                // The queue's slot moved to another node (cluster resharding): wait there next time.
                await close()
            }
        } catch {
            throw JobQError(redis: error, queue: core.name)
        }
        return try await readAvailable()
    }

    func close() async {
        await blocking?.close()
        blocking = nil
    }

    private func blockingClient() async throws(RedisError) -> RedisBlockingClient {
        if let blocking { return blocking }
        let client = try await RedisBlockingClient.onNode(of: core.keys.events, client: core.client)
        blocking = client
        return client
    }

    private func readAvailable() async throws(JobQError) -> [QueueEvents.Element] {
        var snapshot = try await read(after: cursor.description, count: 500)
        if snapshot.lastGenerated < cursor {
            // The stream was deleted (obliterate) and started again: read it from its start.
            cursor = .zero
            nextNumber = 1
            snapshot = try await read(after: cursor.description, count: 500)
        }
        var out: [QueueEvents.Element] = []
        if snapshot.length > 0, snapshot.first > cursor {
            let firstNumber = snapshot.entriesAdded - snapshot.length + 1
            if firstNumber > nextNumber { out.append(.gap(missed: firstNumber - nextNumber)) }
            nextNumber = max(nextNumber, firstNumber)
        }
        for (id, flat) in snapshot.entries {
            if let event = QueueEvent(streamID: id.description, flat: flat) { out.append(.event(event)) }
            nextNumber += 1
            cursor = id
        }
        return out
    }

    private func read(after position: String, count: Int) async throws(JobQError) -> EventsPage {
        try await core.call(core.readEventsCall(after: position, count: count))
    }
}

/// A stream entry id, `<ms>-<seq>`, ordered as Redis orders them.
struct StreamID: Sendable, Hashable, Comparable, CustomStringConvertible {
    let ms: UInt64
    let seq: UInt64
    static let zero = StreamID(ms: 0, seq: 0)

    init(ms: UInt64, seq: UInt64) {
        self.ms = ms
        self.seq = seq
    }

    init?(_ text: String) {
        let parts = text.split(separator: "-")
        guard parts.count == 2, let ms = UInt64(parts[0]), let seq = UInt64(parts[1]) else { return nil }
        self.init(ms: ms, seq: seq)
    }

    static func < (a: StreamID, b: StreamID) -> Bool { (a.ms, a.seq) < (b.ms, b.seq) }
    var description: String { "\(ms)-\(seq)" }
}
