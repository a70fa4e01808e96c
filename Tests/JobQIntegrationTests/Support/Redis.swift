import Foundation
import JobQ
import LocalRedis

/// One `redis-server` per test process for tests that only touch their own keys (`docs/testing.md`).
/// Killed by PID when the process exits.
actor SharedRedis {
    static let instance = SharedRedis()
    private var starting: Task<RedisServerProcess, any Error>?

    func server() async throws -> RedisServerProcess {
        if let starting { return try await starting.value }
        let task = Task { try await RedisServerProcess.start() }
        starting = task
        return try await task.value
    }

    static func client(_ configure: (inout RedisConfiguration) -> Void = { _ in }) async throws -> RedisClient {
        var configuration = try await instance.server().configuration
        configure(&configuration)
        return RedisClient(configuration: configuration)
    }
}

/// A private server for a test that touches the whole server (restart, SCRIPT FLUSH, CLIENT KILL,
/// CONFIG SET, ACL); always stopped (by PID) and its directory removed, also when the body throws.
func withPrivateRedis<T>(_ options: RedisServerProcess.Options = .init(), _ body: (RedisServerProcess) async throws -> T) async throws -> T {
    let server = try await RedisServerProcess.start(options)
    do {
        let result = try await body(server)
        await server.destroy()
        return result
    } catch {
        await server.destroy()
        throw error
    }
}

/// A key no other test uses.
func uniqueKey(_ label: String = #function) -> String {
    "test:\(label.prefix(while: { $0 != "(" })):\(UUID().uuidString)"
}

struct TimedOut: Error, CustomStringConvertible {
    let what: String
    var description: String { "timed out waiting for \(what)" }
}

/// Runs `body`, failing with ``TimedOut`` if it has not finished after `seconds` (a generous
/// deadline that catches a hang, not slowness). A body that ignores cancellation is left running.
func within<T: Sendable>(_ seconds: Double, _ what: String, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    let once = ResumeOnce()
    let result: Result<T, any Error> = await withUnsafeContinuation { continuation in
        let work = Task {
            do {
                let value = try await body()
                once.run { continuation.resume(returning: .success(value)) }
            } catch {
                once.run { continuation.resume(returning: .failure(error)) }
            }
        }
        Task {
            try? await Task.sleep(for: .seconds(seconds))
            if once.run({ continuation.resume(returning: .failure(TimedOut(what: what))) }) { work.cancel() }
        }
    }
    return try result.get()
}

/// Takes the next event from a subscriber's stream within a deadline. One reader per test.
final class EventReader: @unchecked Sendable {
    private var iterator: AsyncStream<RedisSubscriber.Event>.Iterator

    init(_ subscriber: RedisSubscriber) {
        iterator = subscriber.events.makeAsyncIterator()
    }

    func next(within seconds: Double = 20) async throws -> RedisSubscriber.Event {
        try await JobQIntegrationTests.within(seconds, "a pub/sub event") {
            guard let event = await self.advance() else { throw TimedOut(what: "an event (stream finished)") }
            return event
        }
    }

    private func advance() async -> RedisSubscriber.Event? { await iterator.next() }
}

extension RedisClient {
    /// One field of `INFO <section>`.
    func info(_ section: String, _ field: String) async throws -> String? {
        let text = try await send(RedisCommand("INFO", section)).string ?? ""
        for line in text.split(whereSeparator: \.isNewline) where line.hasPrefix(field + ":") {
            return String(line.dropFirst(field.count + 1))
        }
        return nil
    }
}
