import Foundation
import LocalRedis
import Logging
import Synchronization
import Testing

@testable import JobQ
@testable import JobQRedis

/// Log lines kept for a test to read (a swift-log handler).
final class CapturedLogs: Sendable {
    private let lines = Mutex<[(Logger.Level, String)]>([])

    func logger(_ label: String = "test") -> Logger {
        var logger = Logger(label: label) { _ in Handler(sink: self) }
        logger.logLevel = .debug
        return logger
    }

    func record(_ level: Logger.Level, _ text: String) { lines.withLock { $0.append((level, text)) } }

    func contains(level: Logger.Level, _ fragment: String) -> Bool {
        lines.withLock { $0.contains { $0.0 >= level && $0.1.contains(fragment) } }
    }

    var all: String { lines.withLock { $0.map { "\($0.0) \($0.1)" }.joined(separator: "\n") } }

    struct Handler: LogHandler {
        let sink: CapturedLogs
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .debug
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            let merged = metadata.merging(event.metadata ?? [:]) { $1 }
            sink.record(event.level, "\(event.message) \(merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))")
        }
    }
}

/// Hostile input gets a clear, typed answer — never a crash, a lost job or a
/// half-written one.
@Suite("Hostile input", .awaitedTeardown)
struct HostileInputTests {
    @Test("names with braces, colons, spaces, emoji, 200 bytes run end to end; newlines, braces in queue names and 10 KB are refused, nothing written")
    func names() async throws {
        let client = try await SharedRedis.client()
        let suffix = UUID().uuidString.prefix(6)
        // Queue names: `:`, spaces and emoji are fine (the hash tag is the whole name).
        for name in ["a:b:c-\(suffix)", "with space \(suffix)", "🚀 rockets \(suffix)", String(repeating: "q", count: 93) + String(suffix)] {
            let queue = try JobQueue(name: name, client: client)
            // Job names: anything printable up to 200 bytes.
            let jobNames = ["{braces}", "a:b", "two words", "émoji 🎉", String(repeating: "n", count: 200)]
            var handlers = JobHandlers()
            for j in jobNames { handlers.register(name: j) { job, _ in Array(job.name.utf8) } }
            let ids = try await jobNames.asyncMap { try await queue.add(name: $0, payload: .json("{}")).id }
            try await withWorker(queue, handlers: handlers) { _ in
                try await queue.expectEvents(.completed, count: jobNames.count, within: 20)
            }
            for (id, jobName) in zip(ids, jobNames) {
                let job = try #require(try await queue.inspector.job(id))
                #expect(job.name == jobName && job.resultText == jobName && job.state == .completed)
            }
            // Every key of the queue shares its hash tag, whatever the name holds.
            let keys = try await queue.allKeys()
            #expect(!keys.isEmpty && keys.allSatisfy { $0.hasPrefix("jobq:{\(name)}:") })
            _ = try await queue.inspector.obliterate(force: true)
        }

        let valid = try await uniqueQueue()
        for bad in ["line\nbreak", "tab\there", "nul\u{0}", String(repeating: "x", count: 10_240)] {
            await #expect { try await valid.add(name: bad, payload: .json("{}")) } throws: { error in
                guard let error = error as? JobQError, error.code == .invalidJobName else { return false }
                return !error.hint.isEmpty
            }
        }
        #expect(try await valid.allKeys().isEmpty, "a refused add wrote nothing")
        for bad in ["{tag}", "a}b", "new\nline", "", String(repeating: "x", count: 10_240), "emoji 🎉" + String(repeating: "x", count: 95)] {
            #expect { _ = try JobQueue(name: bad, client: client) } throws: { ($0 as? JobQError)?.code == .invalidQueueName }
            #expect { _ = try QueueInspector(name: bad, client: client) } throws: { ($0 as? JobQError)?.code == .invalidQueueName }
        }
    }

    @Test("a 10 MB payload is refused against the 1 MiB limit, nothing written; binary payloads with every byte value round-trip through a worker")
    func payloads() async throws {
        let queue = try await uniqueQueue()
        let huge = [UInt8](repeating: 0x41, count: 10_000_000)
        await #expect { try await queue.add(name: "huge", payload: .bytes(huge)) } throws: { error in
            guard let error = error as? JobQError, error.code == .tooLarge else { return false }
            return "\(error)".contains("10000000 bytes") && "\(error)".contains("1048576")
        }
        let bulk = try await queue.addBulk([JobQueue.NewJob(name: "huge", payload: .bytes(huge)), JobQueue.NewJob(name: "ok", payload: .bytes([1]))])
        #expect(throws: JobQError.self) { try bulk[0].get() }
        #expect((try? bulk[1].get().created) == true, "the valid job of the bulk is still added")
        #expect(try await queue.inspector.counts().waiting == 1)

        // Every byte value, NUL and invalid UTF-8 included, and a malformed "JSON" payload.
        let binary = (0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) } + [0, 0xff, 0xfe, 0xc0, 0x80, 0x0d, 0x0a]
        var handlers = JobHandlers()
        handlers.register(name: "echo") { job, _ in job.payload.bytes }
        handlers.register(name: "ok") { _, _ in [] }
        handlers.register(name: "typed") { job, _ in
            struct Shape: Decodable { var n: Int }
            _ = try job.payload.decode(Shape.self)  // throws on the malformed payload
            return []
        }
        let echo = try await queue.add(name: "echo", payload: .bytes(binary)).id
        let malformed = try await queue.add(name: "typed", payload: .json(#"{"n": "#), options: .init(attempts: 1)).id
        try await withWorker(queue, handlers: handlers) { _ in
            try await eventually(20, "the echo job and the malformed job to end") {
                let first = try await queue.inspector.job(echo)?.state
                let second = try await queue.inspector.job(malformed)?.state
                return first == .completed && second == .failed
            }
        }
        let echoed = try #require(try await queue.inspector.job(echo))
        #expect(echoed.payload.bytes == binary && echoed.payload.encoding == .bytes)
        #expect(echoed.result == binary)
        let failed = try #require(try await queue.inspector.job(malformed))
        #expect(failed.error?.description.isEmpty == false, "the decoding error is recorded")
    }

    @Test("WRONGTYPE: a value of another type planted under the queue's keys gives keyConflict; the worker logs, backs off, and recovers once it is removed")
    func wrongType() async throws {
        let queue = try await uniqueQueue()
        let client = try await SharedRedis.client()
        _ = try await client.send("SET", queue.core.keys.wait, "not a list")
        await #expect { try await queue.add(name: "x", payload: .json("{}")) } throws: { error in
            guard let error = error as? JobQError, error.code == .keyConflict else { return false }
            return "\(error)".contains("jobq:{\(queue.name)}:") && error.hint.contains("TYPE")
        }
        await #expect { try await queue.inspector.counts() } throws: { ($0 as? JobQError)?.code == .keyConflict }
        #expect(try await queue.allKeys() == [queue.core.keys.wait], "nothing else was written")
        // The same for a job of a group, with the rotation planted over: its line is undone too.
        let grouped = try await uniqueQueue()
        let ready = grouped.core.keys.groupPrefix + "ready"
        _ = try await client.send("SET", ready, "not a zset")
        await #expect { try await grouped.add(name: "x", payload: .json("{}"), options: .group("G")) } throws: { error in
            (error as? JobQError)?.code == .keyConflict
        }
        let left = try await grouped.allKeys()
        // The sequence counter may have moved (it orders jobs; it holds no job).
        #expect(Set(left).subtracting([grouped.core.keys.sequence]) == [ready], "nothing else was written: \(left)")
        _ = try await client.send("DEL", ready)

        // A worker on the broken queue: the take fails, it says so and keeps trying, no crash.
        let logs = CapturedLogs()
        var handlers = JobHandlers()
        handlers.register(name: "x") { _, _ in Array("done".utf8) }
        _ = try await client.send("SET", queue.core.keys.marker, "not a zset")
        try await withWorker(queue, logger: logs.logger(), handlers: handlers) { _ in
            try await eventually(20, "the worker to log the conflict") { logs.contains(level: .warning, "keyConflict") }
            _ = try await client.send("DEL", queue.core.keys.wait, queue.core.keys.marker)
            let id = try await queue.add(name: "x", payload: .json("{}")).id
            try await eventually(30, "the job to complete once the keys are fixed") { try await queue.inspector.job(id)?.state == .completed }
        }
    }

    @Test("OOM: with maxmemory reached, add throws outOfMemory and writes nothing; workers keep draining; adds work again once memory is freed")
    func outOfMemory() async throws {
        try await withPrivateRedis(.init(extraArguments: ["--maxmemory-policy", "noeviction"])) { server in
            let client = RedisClient(configuration: server.configuration)
            onTeardown { await client.close() }
            let queue = try JobQueue(name: "oom", client: client)
            let waiting = try await queue.add(name: "x", payload: .json("{}")).id
            // Three schedules due now, for when Redis is full.
            for id in ["s1", "s2", "s3"] {
                try await queue.upsertSchedule(id: id, .every(.minutes(1)), job: .init(name: "x", payload: .json("{}")))
                try await ScheduleTests.setNextTick(queue, id, Date().epochMs - 100)
            }
            // Some data, then a limit below what Redis uses: with noeviction every write is refused.
            let blob = String(repeating: "z", count: 100_000)
            for i in 0..<10 { _ = try await client.send("SET", "filler:\(i)", blob) }
            let used =
                Int(try await client.send("INFO", "memory").string?.split(separator: "\r\n").first { $0.hasPrefix("used_memory:") }?.dropFirst(12) ?? "0") ?? 0
            #expect(used > 1_000_000)
            _ = try await client.send("CONFIG", "SET", "maxmemory", String(used - 200_000))
            #expect(try await client.send("SET", "one-more", "x").errorCode == "OOM", "Redis is full")
            await #expect { try await queue.add(name: "x", payload: .json("{}"), options: .init(jobID: "refused-1")) } throws: { error in
                guard let error = error as? JobQError, error.code == .outOfMemory else { return false }
                return error.hint.contains("maxmemory")
            }
            // A bulk add is refused job by job, each with the same error, and writes nothing either.
            let bulk = try await queue.addBulk((0..<150).map { JobQueue.NewJob(name: "x", payload: .json("{}"), options: .init(jobID: "bulk-\($0)")) })
            #expect(bulk.count == 150)
            #expect(bulk.allSatisfy { if case .failure(let e) = $0 { e.code == .outOfMemory } else { false } }, "\(bulk.prefix(3))")
            // Schedules due make no tick jobs either.
            await #expect { try await queue.advanceSchedulesOnce(most: 10) } throws: { ($0 as? JobQError)?.code == .outOfMemory }
            let keysNow = try await queue.allKeys().filter { !$0.contains(":s:") }
            #expect(keysNow.count == 4, "only what the first add wrote: \(keysNow)")
            #expect(try await client.send("EXISTS", queue.core.keys.job("refused-1")).int == 0, "no half-written job")
            #expect(try await queue.inspector.counts().waiting == 1)

            // A worker still drains: take and finish start with a delete, which a full Redis allows
            // (and then lets the script finish, to keep it atomic), so work goes on and frees memory.
            let logs = CapturedLogs()
            var handlers = JobHandlers()
            handlers.register(name: "x") { _, _ in [] }
            try await withWorker(queue, logger: logs.logger(), handlers: handlers) { _ in
                try await eventually(20, "the waiting job to complete while Redis is full") { try await queue.inspector.job(waiting)?.state == .completed }
                await #expect { try await queue.add(name: "x", payload: .json("{}")) } throws: { ($0 as? JobQError)?.code == .outOfMemory }
                // Memory freed (our private server): adds go through again and run.
                _ = try await client.send(RedisCommand("DEL", arguments: (0..<10).map { "filler:\($0)" }))
                _ = try await client.send("CONFIG", "SET", "maxmemory", "0")
                let id = try await queue.add(name: "x", payload: .json("{}")).id
                try await eventually(30, "a job added after memory was freed to complete") { try await queue.inspector.job(id)?.state == .completed }
            }
            #expect(!logs.contains(level: .critical, ""), "\(logs.all)")
        }
    }

    @Test("LOADING: calls wait while Redis loads its dataset and go through once it is loaded; past the deadline the error names LOADING")
    func loading() async throws {
        try await withPrivateRedis(
            .init(appendFsync: "everysec", extraArguments: ["--key-load-delay", "200", "--loading-process-events-interval-bytes", "1024"])
        ) { server in
            let setup = RedisClient(configuration: server.configuration)
            for chunk in 0..<20 {
                _ = try await setup.send(RedisCommand("MSET", arguments: (0..<1000).flatMap { ["filler:\(chunk):\($0)", "0123456789"] }))
            }
            _ = try await setup.send("BGREWRITEAOF")
            try await eventually(30, "the AOF rewrite") {
                try await setup.send("INFO", "persistence").string?.contains("aof_rewrite_in_progress:0") == true
            }
            await setup.close()
            await server.stop()
            try await server.restart(untilLoaded: false)  // 20,000 keys at 200 µs each: about 4 s of LOADING

            var patient = server.configuration
            patient.retryDeadline = .seconds(60)
            let client = RedisClient(configuration: patient)
            onTeardown { await client.close() }
            var hasty = server.configuration
            hasty.retryDeadline = .milliseconds(300)
            let impatient = RedisClient(configuration: hasty)
            onTeardown { await impatient.close() }
            let queue = try JobQueue(name: "loading", client: client)
            let early = try JobQueue(name: "loading", client: impatient)
            await #expect { try await early.add(name: "x", payload: .json("{}")) } throws: { "\($0)".contains("LOADING") }
            let added = try await queue.add(name: "x", payload: .json("{}"))
            #expect(added.created)
            #expect(try await client.send("DBSIZE").int ?? 0 > 20_000, "the dataset was loaded, then the job added")
        }
    }
}

extension Sequence {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var out: [T] = []
        for e in self { out.append(try await transform(e)) }
        return out
    }
}
