import Foundation
import Synchronization
import Testing

@testable import JobQ
@testable import JobQRedis

/// A clock that moves only when the test says so: sleepers wake when ``advance(by:)`` passes
/// their deadline, or throw `CancellationError` when their task is cancelled.
final class TestClock: Clock, Sendable {
    struct Instant: InstantProtocol {
        var offset: Duration
        func advanced(by duration: Duration) -> Instant { Instant(offset: offset + duration) }
        func duration(to other: Instant) -> Duration { other.offset - offset }
        static func < (a: Instant, b: Instant) -> Bool { a.offset < b.offset }
    }

    private struct Sleeper {
        var deadline: Instant
        var continuation: CheckedContinuation<Void, any Error>
    }

    private let state = Mutex<(now: Instant, sleepers: [UInt64: Sleeper], next: UInt64)>((Instant(offset: .zero), [:], 0))

    var now: Instant { state.withLock { $0.now } }
    var minimumResolution: Duration { .nanoseconds(1) }
    /// Tasks sleeping on this clock right now.
    var sleeping: Int { state.withLock { $0.sleepers.count } }

    func sleep(until deadline: Instant, tolerance: Duration?) async throws {
        let id = state.withLock { s in
            defer { s.next += 1 }
            return s.next
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let resumeNow: Bool = state.withLock { s in
                    if deadline <= s.now || Task.isCancelled { return true }
                    s.sleepers[id] = Sleeper(deadline: deadline, continuation: continuation)
                    return false
                }
                if resumeNow { continuation.resume() }
            }
            try Task.checkCancellation()
        } onCancel: {
            state.withLock { $0.sleepers.removeValue(forKey: id) }?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Moves time forward and wakes every sleeper now due.
    func advance(by duration: Duration) {
        let due = state.withLock { s -> [CheckedContinuation<Void, any Error>] in
            s.now = s.now.advanced(by: duration)
            let ready = s.sleepers.filter { $0.value.deadline <= s.now }
            for id in ready.keys { s.sleepers[id] = nil }
            return ready.values.map(\.continuation)
        }
        for c in due { c.resume() }
    }
}

/// Counts calls from any thread.
final class Calls: Sendable {
    private let names = Mutex<[String]>([])
    func record(_ name: String) { names.withLock { $0.append(name) } }
    var all: [String] { names.withLock { $0 } }
}

/// Waits (bounded, a yield at a time) until `condition` holds; the pieces under test resume
/// other tasks, so the test lets them run.
func settle(_ what: String, _ condition: () -> Bool) async throws {
    for _ in 0..<100_000 {
        if condition() { return }
        await Task.yield()
    }
    Issue.record("never settled: \(what)")
}

@Suite("Timeout timers, driven by a test clock")
struct TimeoutTimersTests {
    @Test("each timer fires at its deadline and not before; one sleeper serves them all; a removed timer never fires")
    func firesInOrder() async throws {
        let clock = TestClock()
        let timers = TimeoutTimers(clock: clock)
        let calls = Calls()
        let start = clock.now
        _ = timers.add(at: start.advanced(by: .seconds(5))) { calls.record("five") }
        _ = timers.add(at: start.advanced(by: .seconds(1))) { calls.record("one") }
        let removed = timers.add(at: start.advanced(by: .seconds(3))) { calls.record("three") }
        try await settle("one sleeper") { clock.sleeping == 1 }
        #expect(timers.pending == 3)

        clock.advance(by: .milliseconds(999))
        await Task.yield()
        #expect(calls.all.isEmpty, "nothing is due before its deadline")

        clock.advance(by: .milliseconds(1))
        try await settle("the 1 s timer") { calls.all == ["one"] }
        timers.remove(removed)
        try await settle("re-armed for the 5 s timer") { clock.sleeping == 1 }
        clock.advance(by: .seconds(3))
        await Task.yield()
        #expect(calls.all == ["one"], "the removed 3 s timer stays silent")
        clock.advance(by: .seconds(1))
        try await settle("the 5 s timer") { calls.all == ["one", "five"] }
        #expect(timers.pending == 0)
    }

    @Test("a sooner deadline replaces the sleeper; a later one keeps it")
    func rearm() async throws {
        let clock = TestClock()
        let timers = TimeoutTimers(clock: clock)
        let calls = Calls()
        _ = timers.add(at: clock.now.advanced(by: .seconds(60))) { calls.record("late") }
        try await settle("armed") { clock.sleeping == 1 }
        _ = timers.add(at: clock.now.advanced(by: .seconds(2))) { calls.record("soon") }
        _ = timers.add(at: clock.now.advanced(by: .seconds(30))) { calls.record("middle") }
        try await settle("one sleeper for the sooner deadline") { clock.sleeping == 1 }
        clock.advance(by: .seconds(2))
        try await settle("soon") { calls.all == ["soon"] }
        clock.advance(by: .seconds(100))
        try await settle("the rest, in one wake") { Set(calls.all) == ["soon", "middle", "late"] }
        #expect(calls.all.count == 3)
    }
}

@Suite("SlotGate: slots shared by weight")
struct SlotGateTests {
    @Test("a queue fills up to its quota while the other has work, beyond it while the other is idle; release admits the waiter")
    func quotas() async throws {
        let gate = SlotGate(capacity: 4, quotas: [3, 1])
        for _ in 0..<3 { #expect(await gate.acquire(0)) }
        #expect(gate.activeCount == 3)
        let waiting = Task { await gate.acquire(0) }
        try await settle("the fourth queue-0 fetcher waits") { gate.activeCount == 3 }
        #expect(gate.mayContinue(0), "a run within its share keeps its slot")
        #expect(await gate.acquire(1), "queue 1 still has its slot")
        #expect(gate.activeCount == 4)
        gate.release(1)
        gate.setIdle(1, true)
        #expect(await waiting.value, "with queue 1 idle, queue 0 may use its slot")
        #expect(gate.activeCount == 4)
        gate.setIdle(1, false)
        #expect(!gate.mayContinue(0), "over its share again once queue 1 has work: the slot goes back")
    }

    @Test("never more than the capacity, whatever the quotas; close refuses waiters; waitUntilEmpty returns when the last slot is freed")
    func capacityAndClose() async throws {
        let gate = SlotGate(capacity: 2, quotas: [2, 2])
        gate.setIdle(1, true)
        #expect(await gate.acquire(0))
        #expect(await gate.acquire(0))
        let third = Task { await gate.acquire(0) }
        try await settle("the third fetcher waits") { gate.activeCount == 2 }
        gate.close()
        #expect(await third.value == false, "a closed gate refuses")
        #expect(await gate.acquire(1) == false)
        let empty = Task { await gate.waitUntilEmpty() }
        gate.release(0)
        gate.release(0)
        await empty.value
        #expect(gate.activeCount == 0)
    }

    @Test("quotas follow the weights, rounded up, at least 1 each")
    func weights() {
        var configuration = WorkerConfiguration(queues: [.init("a", weight: 3), .init("b", weight: 1)], concurrency: 8)
        #expect(configuration.quotas() == [6, 2])
        configuration = WorkerConfiguration(queues: [.init("a", weight: 100), .init("b", weight: 1)], concurrency: 4)
        #expect(configuration.quotas() == [4, 1])
    }
}

@Suite("Cluster routing: redirects and routing keys")
struct ClusterRoutingTests {
    @Test("MOVED and ASK replies parse to a slot and an endpoint (IPv4, host names, bracketed IPv6); anything else is nil")
    func redirects() {
        func parse(_ text: String) -> (Int, RedisEndpoint)? { RedisReplyKind.redirect(text) }
        #expect(parse("MOVED 3999 127.0.0.1:6381").map { "\($0.0) \($0.1)" } == "3999 \(RedisEndpoint.tcp(host: "127.0.0.1", port: 6381))")
        #expect(parse("ASK 16383 redis-2.internal:7000")?.0 == 16383)
        #expect(parse("MOVED 0 [::1]:7001").map { "\($0.1)" } == "\(RedisEndpoint.tcp(host: "::1", port: 7001))")
        for bad in [
            "MOVED", "MOVED 3999", "MOVED x 127.0.0.1:1", "MOVED 16384 127.0.0.1:1", "MOVED -1 h:1", "MOVED 1 nohost", "MOVED 1 h:port", "MOVED 1 :7000",
            "MOVED 1 h:0",
        ] {
            #expect(parse(bad) == nil, "\(bad)")
        }
        #expect(RedisReplyKind(.status("OK")) == .answer)
        #expect(RedisReplyKind(.error("MOVED 1 h:port")) == .answer, "an unreadable redirect goes to the caller as it is")
    }

    @Test("a CLUSTER SLOTS node entry yields its announced host name (Redis 7 metadata), or nil")
    func announcedHostnames() {
        let node: [RedisReply] = [.bulk(Array("10.0.0.5".utf8)), .integer(7000), .bulk(Array("abc".utf8))]
        #expect(RedisClusterRouter.announcedHostname(node) == nil, "Redis 6: no metadata")
        #expect(RedisClusterRouter.announcedHostname(node + [.array([])]) == nil)
        let named = node + [.array([.bulk(Array("hostname".utf8)), .bulk(Array("redis-1.internal".utf8))])]
        #expect(RedisClusterRouter.announcedHostname(named) == "redis-1.internal")
        let empty = node + [.array([.bulk(Array("hostname".utf8)), .bulk([])])]
        #expect(RedisClusterRouter.announcedHostname(empty) == nil)
        #expect(RedisClusterRouter.announcedHostname(node + [.array([.bulk(Array("hostname".utf8))])]) == nil, "odd-length metadata")
    }

    @Test("a script routes by its first key, a command by its first key argument, keyless commands nowhere")
    func routingKeys() throws {
        func key(_ item: RedisConnectionLoop.Item) -> String? {
            RedisClusterRouter.routingKey(item).map { String(decoding: $0, as: UTF8.self) }
        }
        let script = RedisScript(name: "s-2", source: "return 1", keyCount: 2)
        #expect(key(.script(script, RedisCommand("2", "jobq:{q}:a", "jobq:{q}:b", "arg"))) == "jobq:{q}:a")
        #expect(key(.script(script, RedisCommand("0", "arg"))) == nil, "no keys: anywhere")
        #expect(key(.command(RedisCommand("HGET", "jobq:{q}:job:1", "s"))) == "jobq:{q}:job:1")
        #expect(key(.command(RedisCommand("EVALSHA", "abc", "1", "jobq:{q}:wait", "x"))) == "jobq:{q}:wait")
        #expect(key(.command(RedisCommand("XREAD", "COUNT", "10", "STREAMS", "jobq:{q}:events", "0-0"))) == "jobq:{q}:events")
        for keyless in ["PING", "INFO", "WAIT", "CLUSTER", "SCRIPT"] {
            #expect(key(.command(RedisCommand(keyless, "x"))) == nil, "\(keyless)")
        }
        // The slot of a key is its hash tag's.
        #expect(RedisClusterSlot.of(Array("jobq:{emails}:wait".utf8)) == RedisClusterSlot.of(Array("emails".utf8)))
    }
}
