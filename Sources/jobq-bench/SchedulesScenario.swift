import Foundation
import Histogram
import JobQ
import Synchronization

/// Scenario `schedules`: 10,000 schedules each firing every second on one Redis, one worker
/// (concurrency 64, a no-op handler) advancing and running them. Lateness = handler start − the
/// tick's intended time (this machine's clock; Redis runs on it too), after a warm-up. The
/// reference, in the same run: the same number of delayed jobs, due as the ticks are (all of a
/// second's at the whole second), through the same worker. Redis CPU per tick from `INFO cpu` over the schedule run.
struct SchedulesScenario {
    let client: RedisClient
    let runs: Int
    let quick: Bool

    func run() async throws -> ScenarioReport {
        var report = ScenarioReport("schedules")
        let count = quick ? 1_000 : 10_000
        let seconds = quick ? 6.0 : 15.0
        let warmUp = 3.0
        var scheduledP50: [Double] = []
        var scheduledP99: [Double] = []
        var delayedP50: [Double] = []
        var delayedP99: [Double] = []
        var cpuPerTick: [Double] = []
        var made: [Double] = []
        var mergedScheduled = Histogram<UInt64>(numberOfSignificantValueDigits: .three)
        var pathBatched: [Double] = []
        var pathSingle: [Double] = []
        var commandsBatched: [Double] = []
        var commandsSingle: [Double] = []
        for run in 0..<runs {
            let batched = try await tickPath(count: 2_000, most: 100, label: "\(run)")
            let single = try await tickPath(count: 2_000, most: 1, label: "\(run)")
            pathBatched.append(batched.cpuMicros)
            pathSingle.append(single.cpuMicros)
            commandsBatched.append(batched.commands)
            commandsSingle.append(single.commands)
            let s = try await scheduled(count: count, seconds: seconds, warmUp: warmUp, label: "\(run)")
            scheduledP50.append(Double(s.histogram.valueAtPercentile(50)))
            scheduledP99.append(Double(s.histogram.valueAtPercentile(99)))
            cpuPerTick.append(s.cpuMicrosPerTick)
            made.append(s.ticksPerSecond)
            mergedScheduled.add(s.histogram)
            let d = try await delayed(perSecond: count, seconds: seconds - warmUp, label: "\(run)")
            delayedP50.append(Double(d.valueAtPercentile(50)))
            delayedP99.append(Double(d.valueAtPercentile(99)))
            report.jobs += Int(s.ticksPerSecond * (seconds - warmUp)) + count * Int(seconds - warmUp)
        }
        let n = count.formatted()
        report.add(
            Figure(
                "schedules: \(n) every 1 s, tick → handler start p50", scheduledP50, unit: "ms",
                reference: "\(n) delayed jobs due at each whole second, due → start p50",
                referenceValues: delayedP50))
        let target = median(delayedP99) + 5
        report.add(
            Figure(
                "schedules: tick → handler start p99", scheduledP99, unit: "ms", reference: "delayed jobs, due → start p99",
                referenceValues: delayedP99, target: "≤ reference + 5 ms", met: median(scheduledP99) <= target))
        report.add(Figure("schedules: ticks run per second (of \(n) due)", made, unit: "/s"))
        report.add(
            Figure(
                "schedules: Redis CPU per tick made, claim + advance only (100 schedules per call)", pathBatched, unit: "µs",
                reference: "the same, 1 schedule per call", referenceValues: pathSingle))
        report.add(
            Figure(
                "schedules: Redis commands per tick made, claim + advance only (100 per call)", commandsBatched, unit: "",
                reference: "the same, 1 per call", referenceValues: commandsSingle))
        report.add(Figure("schedules: Redis CPU per tick (claim, advance, take, finish)", cpuPerTick, unit: "µs"))
        report.latency("tick → handler start, \(n) schedules", mergedScheduled, unit: "ms")
        report.note(
            "schedules: every worker claims due schedules 100 at a time (dueSchedules-2), plans each step in Swift and applies the claim's steps in one advanceSchedules-13 call; a tick's job is made up to 5 s ahead into the delayed set, so it starts through the delayed-job timer like any delayed job. Lateness is in whole milliseconds."
        )
        return report
    }

    /// Claim and advance alone, no worker: `count` schedules every second (each due at once
    /// on upsert: its first tick is within the lead), advanced `most` per claim until each has
    /// made a tick. Redis CPU and commands (script calls and the commands they run) per tick.
    private func tickPath(count: Int, most: Int, label: String) async throws -> (cpuMicros: Double, commands: Double) {
        let queue = try JobQueue(name: "bench-tickpath-\(most)-\(label)-\(UUID().uuidString.prefix(6))", client: client)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for start in stride(from: 0, to: count, by: count / 32) {
                group.addTask {
                    for i in start..<min(start + count / 32, count) {
                        try await queue.upsertSchedule(id: "s\(i)", .every(.seconds(1)), job: .init(name: "tick", payload: .json("{}")))
                    }
                }
            }
            try await group.waitForAll()
        }
        let before = try await ServerStats.fetch(client)
        var added = 0
        var passes = 0
        while added < count, passes < 4 * count / most + 100 {
            added += try await queue.advanceSchedulesOnce(most: most).added
            passes += 1
        }
        let after = try await ServerStats.fetch(client)
        for s in try await queue.schedules() { try await queue.removeSchedule(id: s.id) }
        _ = try await queue.inspector.obliterate(force: true)
        guard added >= count else { throw BenchError("only \(added) of \(count) ticks made in \(passes) passes") }
        let commands = ServerStats.callsBetween(before, after).values.reduce(0, +)
        return ((after.cpuSeconds - before.cpuSeconds) * 1e6 / Double(added), Double(commands) / Double(added))
    }

    struct ScheduledRun {
        var histogram: Histogram<UInt64>
        var cpuMicrosPerTick: Double
        var ticksPerSecond: Double
    }

    private func scheduled(count: Int, seconds: Double, warmUp: Double, label: String) async throws -> ScheduledRun {
        let queue = try JobQueue(name: "bench-schedules-\(label)-\(UUID().uuidString.prefix(6))", client: client)
        try await queue.inspector.setRetention(completed: 0)
        // Upserted 64 at a time.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for start in stride(from: 0, to: count, by: count / 64 + 1) {
                group.addTask {
                    for i in start..<min(start + count / 64 + 1, count) {
                        try await queue.upsertSchedule(id: "s\(i)", .every(.seconds(1)), job: .init(name: "tick", payload: .json("{}")))
                    }
                }
            }
            try await group.waitForAll()
        }
        let begin = Date()
        let measureFrom = begin.addingTimeInterval(warmUp)
        let samples = Mutex<[Int64]>([])
        var handlers = JobHandlers()
        handlers.register(name: "tick") { job, _ in
            let now = Date()
            if now >= measureFrom, let tick = job.scheduledFor {
                let late = Int64((now.timeIntervalSince(tick) * 1000).rounded())
                samples.withLock { $0.append(max(0, late)) }
            }
            return []
        }
        let worker = try BenchWorker(
            server: client.configuration, configuration: WorkerConfiguration(queues: [.init(queue.name)], concurrency: 64), handlers: handlers)
        try await Task.sleep(for: .seconds(warmUp))
        let before = try await ServerStats.fetch(client)
        try await Task.sleep(for: .seconds(seconds - warmUp))
        let after = try await ServerStats.fetch(client)
        try await worker.stop()
        for s in try await queue.schedules() { try await queue.removeSchedule(id: s.id) }
        _ = try await queue.inspector.obliterate(force: true)
        let values = samples.withLock { $0 }
        guard !values.isEmpty else { throw BenchError("no scheduled job ran in \(Int(seconds)) s") }
        var histogram = Histogram<UInt64>(numberOfSignificantValueDigits: .three)
        for v in values { _ = histogram.record(UInt64(v)) }
        let window = seconds - warmUp
        return ScheduledRun(
            histogram: histogram, cpuMicrosPerTick: (after.cpuSeconds - before.cpuSeconds) * 1e6 / Double(max(values.count, 1)),
            ticksPerSecond: Double(values.count) / window)
    }

    private func delayed(perSecond: Int, seconds: Double, label: String) async throws -> Histogram<UInt64> {
        let queue = try JobQueue(name: "bench-schedules-delayed-\(label)-\(UUID().uuidString.prefix(6))", client: client)
        try await queue.inspector.setRetention(completed: 0)
        // Due as the ticks are: `perSecond` jobs at each whole second.
        let count = perSecond * Int(seconds)
        let start = (Date().timeIntervalSince1970 + 3).rounded(.up)
        var jobs: [JobQueue.NewJob] = []
        for i in 0..<count {
            let dueMs = Int64((start + Double(i / perSecond)) * 1000)
            jobs.append(
                JobQueue.NewJob(
                    name: "due", payload: .json(#"{"due":\#(dueMs)}"#), options: JobOptions(runAt: Date(timeIntervalSince1970: Double(dueMs) / 1000))))
        }
        for result in try await queue.addBulk(jobs) { _ = try result.get() }
        struct Due: Decodable { var due: Int64 }
        let samples = Mutex<[Int64]>([])
        var handlers = JobHandlers()
        handlers.register(name: "due") { job, _ in
            let now = Int64((Date().timeIntervalSince1970 * 1000).rounded())
            let due = (try? job.payload.decode(Due.self).due) ?? now
            samples.withLock { $0.append(max(0, now - due)) }
            return []
        }
        let worker = try BenchWorker(
            server: client.configuration, configuration: WorkerConfiguration(queues: [.init(queue.name)], concurrency: 64), handlers: handlers)
        let deadline = ContinuousClock.now + .seconds(seconds + 60)
        while ContinuousClock.now < deadline, samples.withLock({ $0.count }) < count {
            try await Task.sleep(for: .milliseconds(100))
        }
        try await worker.stop()
        _ = try await queue.inspector.obliterate(force: true)
        let values = samples.withLock { $0 }
        guard values.count == count else { throw BenchError("only \(values.count) of \(count) delayed jobs ran") }
        var histogram = Histogram<UInt64>(numberOfSignificantValueDigits: .three)
        for v in values { _ = histogram.record(UInt64(v)) }
        return histogram
    }
}
