import Foundation
import Synchronization
import Testing

@testable import JobQ
@testable import JobQRedis

extension JobHandlers {
    /// Registers `name` as a handler that runs until its job is cancelled (then throws).
    mutating func registerUntilCancelled(name: String) {
        register(name: name) { _, context in
            _ = await context.waitForCancellation()
            try context.checkCancellation()
            return []
        }
    }
}

/// The moving parts of a failover test (Cluster or Sentinel): a queue with durable adds (`WAIT 1`,
/// 1 s) and a plain one on the same primary, one worker serving both (lease 3 s), and a producer
/// per queue adding a job every 10 ms until told to stop.
struct FailoverRun {
    struct Tally: Sendable {
        var acked: [String] = []
        var refused = 0
        var firstRefusal = ""
    }

    final class Flag: Sendable {
        private let value = Mutex(false)
        var isSet: Bool { value.withLock { $0 } }
        func set() { value.withLock { $0 = true } }
    }

    let durable: JobQueue
    let plain: JobQueue
    let worker: Worker
    let running: Task<Void, any Error>
    private let stop: Flag
    private let producers: [Task<Tally, Never>]

    var queues: [JobQueue] { [durable, plain] }

    /// Starts the worker and the producers, and returns once 50 jobs of `durable` completed.
    static func start(client: RedisClient, durable durableName: String, plain plainName: String, adds: Int = 400) async throws -> FailoverRun {
        var durableSettings = QueueSettings()
        durableSettings.replicasToConfirmAdds = 1
        durableSettings.replicaConfirmTimeout = .seconds(1)
        let durable = try JobQueue(name: durableName, client: client, settings: durableSettings)
        let plain = try JobQueue(name: plainName, client: client)
        for q in [durable, plain] { try await q.inspector.setRetention(completed: 10_000) }

        var handlers = JobHandlers()
        handlers.register(name: "work") { _, _ in
            try await Task.sleep(for: .milliseconds(2))
            return []
        }
        handlers.registerUntilCancelled(name: "long")
        var configuration = WorkerConfiguration(queues: [.init(durableName), .init(plainName)], concurrency: 8)
        configuration.lease = .seconds(3)
        configuration.maxBlockTimeout = .seconds(1)
        let worker = try Worker(client: client, configuration: configuration, handlers: handlers)
        let running = Task { try await worker.run() }
        let stop = Flag()
        let answered = Answered()
        let producers = [durable, plain].enumerated().map { (i, q) in
            Task {
                var t = Tally()
                for _ in 0..<adds where !stop.isSet {
                    do { t.acked.append(try await q.add(name: "work", payload: .json("{}")).id) } catch {
                        t.refused += 1
                        if t.firstRefusal.isEmpty { t.firstRefusal = "\(error)" }
                    }
                    answered.bump(i)
                    try? await Task.sleep(for: .milliseconds(10))
                }
                return t
            }
        }
        let run = FailoverRun(durable: durable, plain: plain, worker: worker, running: running, stop: stop, answered: answered, producers: producers)
        do {
            try await eventually(30, "jobs running before the failover") { try await durable.inspector.counts().completed >= 50 }
        } catch {
            _ = await run.stopProducing()
            worker.shutdown()
            throw error
        }
        return run
    }

    private init(
        durable: JobQueue, plain: JobQueue, worker: Worker, running: Task<Void, any Error>, stop: Flag, answered: Answered, producers: [Task<Tally, Never>]
    ) {
        self.durable = durable
        self.plain = plain
        self.worker = worker
        self.running = running
        self.stop = stop
        self.answered = answered
        self.producers = producers
    }

    /// Adds answered (acknowledged or refused) per producer, durable first.
    final class Answered: Sendable {
        private let counts = Mutex([0, 0])
        func bump(_ i: Int) { counts.withLock { $0[i] += 1 } }
        var now: [Int] { counts.withLock { $0 } }
    }
    private let answered: Answered

    /// Waits until the plain producer has had `count` more adds answered than now, and the
    /// durable one at least one (without a replica each of its adds waits out the 1 s `WAIT`) —
    /// after a failover, proof that adds go on against the new primary.
    func waitForMoreAdds(_ count: Int) async throws {
        let start = answered.now
        try await eventually(60, "\(count) more plain adds and a durable one answered") {
            let now = self.answered.now
            return now[0] > start[0] && now[1] - start[1] >= count
        }
    }

    /// Stops the producers; their tallies, durable first.
    func stopProducing() async -> [Tally] {
        stop.set()
        var tallies: [Tally] = []
        for p in producers { tallies.append(await p.value) }
        return tallies
    }

    /// Waits until every acknowledged job has completed or is gone (lost in the failover), and
    /// nothing is waiting or running — adds refused for want of a replica's ack were still
    /// written, and end like the others; checks nothing failed. Returns the lost count per queue.
    func settle(_ tallies: [Tally]) async throws -> [Int] {
        let missingNow = Mutex([Int](repeating: 0, count: tallies.count))
        for (i, (q, tally)) in zip(queues, tallies).enumerated() {
            try await eventually(60, "\(q.name)'s surviving jobs to complete") {
                var done = 0
                var missing = 0
                for id in tally.acked {
                    switch try await q.inspector.job(id)?.state {
                    case .completed?: done += 1
                    case nil: missing += 1
                    default: break
                    }
                }
                missingNow.withLock { $0[i] = missing }
                return done + missing == tally.acked.count
            }
            try await eventually(30, "\(q.name) has nothing waiting or running") {
                let counts = try await q.inspector.counts()
                return counts.waiting == 0 && counts.active == 0
            }
            let counts = try await q.inspector.counts()
            #expect(counts.failed == 0, "\(q.name): \(counts)")
        }
        return missingNow.withLock { $0 }
    }

    /// A running job on the plain queue is cancelled: the worker's cancel subscription followed.
    func cancelStillArrives() async throws {
        let long = try await plain.add(name: "long", payload: .json("{}")).id
        try await eventually(30, "the long job to run after the failover") { try await plain.inspector.job(long)?.state == .active }
        _ = try await plain.cancel(long)
        try await eventually(30, "the cancel after the failover") { try await plain.inspector.job(long)?.state == .cancelled }
    }

    /// Prints what the failover cost (the figures the README quotes) and checks the promises:
    /// no durable add lost, no plain add refused.
    func report(_ what: String, _ tallies: [Tally], lost: [Int]) {
        print(
            "\(what); durable adds acked \(tallies[0].acked.count), refused \(tallies[0].refused) (no replica to confirm), lost \(lost[0]); plain adds acked \(tallies[1].acked.count), refused \(tallies[1].refused), lost \(lost[1])"
        )
        #expect(lost[0] == 0, "a durable add confirmed by a replica survives the failover")
        #expect(tallies[1].refused == 0, "plain adds ride through the failover (the client waits and re-resolves): \(tallies[1].firstRefusal)")
    }

    /// Stops the worker and waits for it.
    func finish() async throws {
        worker.shutdown()
        try await running.value
    }

    /// Seconds since `start`, to 2 decimals.
    static func seconds(since start: ContinuousClock.Instant) -> Double {
        let d = ContinuousClock.now - start
        return ((Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18) * 100).rounded() / 100
    }
}
