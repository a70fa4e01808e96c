import Foundation
import Synchronization
import Testing

@testable import JobQ
@testable import JobQRedis

/// Recurring jobs (`docs/schedules.md`) against a real Redis: one job per tick whoever
/// advances, misfire and overlap policies, upsert, pause and remove while ticks are due.
@Suite("Schedules", .awaitedTeardown)
struct ScheduleTests {
    /// The ids of the jobs handlers ran, in order.
    final class Runs: Sendable {
        private let ids = Mutex<[String]>([])
        func add(_ id: String) { ids.withLock { $0.append(id) } }
        var all: [String] { ids.withLock { $0 } }
    }

    static func handlers(_ runs: Runs, name: String = "tick", hold: Duration = .zero) -> JobHandlers {
        var handlers = JobHandlers()
        handlers.register(name: name) { job, context in
            runs.add(job.id)
            if hold > .zero {
                for _ in 0..<Int(hold / .milliseconds(50)) {
                    if context.isCancelled { break }
                    try? await Task.sleep(for: .milliseconds(50))
                }
            }
            return []
        }
        return handlers
    }

    static func tickMs(_ jobID: String) -> Int64? {
        guard let at = jobID.split(separator: "@").last else { return nil }
        return ISO8601DateFormatter().date(from: String(at)).map(\.epochMs)
    }

    @Test("a 1-second schedule: one job per tick, ids from the ticks, consecutive, started on time, each announced")
    func everySecond() async throws {
        let queue = try await uniqueQueue()
        let runs = Runs()
        let upsert = try await queue.upsertSchedule(id: "beat", .every(.seconds(1)), job: .init(name: "tick", payload: .json(#"{"n":1}"#)))
        #expect(upsert.change == .created)
        let again = try await queue.upsertSchedule(id: "beat", .every(.seconds(1)), job: .init(name: "tick", payload: .json(#"{"n":1}"#)))
        #expect(again.change == .unchanged, "the same spec again writes nothing")
        try await withWorker(queue, handlers: Self.handlers(runs)) { _ in
            try await eventually(30, "5 ticks ran") { runs.all.count >= 5 }
        }
        let ids = runs.all
        #expect(Set(ids).count == ids.count, "no tick ran twice: \(ids)")
        // Handlers run concurrently: two ticks due together (a late promotion on a loaded
        // machine) may record their starts in either order, so the ticks are compared sorted.
        let ticks = ids.compactMap(Self.tickMs).sorted()
        #expect(ticks.count == ids.count && ids.allSatisfy { $0.hasPrefix("beat@") })
        for (a, b) in zip(ticks, ticks.dropFirst()) { #expect(b - a == 1000, "consecutive seconds: \(ids)") }
        let job = try #require(try await queue.inspector.job(ids[1]))
        #expect(job.scheduleID == "beat" && job.scheduledFor.map(\.epochMs) == Self.tickMs(ids[1]))
        let started = try #require(job.startedAt)
        #expect(started.timeIntervalSince(job.scheduledFor!) >= -0.001, "made ahead, it never starts before its tick")
        let scheduled = try await queue.expectEvents(.scheduled, count: ids.count)
        #expect(scheduled.allSatisfy { $0.scheduleID == "beat" && $0.tick != nil })
        let s = try #require(try await queue.schedule(id: "beat"))
        #expect(s.fired >= ids.count && s.skipped == 0 && !s.isPaused)
        #expect(s.lastRun != nil && s.upcoming(3).count == 3)
    }

    @Test("two workers and a one-shot tick all advancing: still one job per tick")
    func racingSchedulers() async throws {
        let queue = try await uniqueQueue()
        let runs = Runs()
        try await queue.upsertSchedule(id: "race", .every(.seconds(1)), job: .init(name: "tick", payload: .json("{}")))
        try await withWorker(queue, handlers: Self.handlers(runs)) { _ in
            try await withWorker(queue, handlers: Self.handlers(runs)) { _ in
                for _ in 0..<20 { _ = try await queue.advanceSchedules() }
                try await eventually(30, "6 ticks ran") { runs.all.count >= 6 }
            }
        }
        let ids = runs.all
        #expect(Set(ids).count == ids.count, "every tick once: \(ids)")
        let ticks = ids.compactMap(Self.tickMs).sorted()
        for (a, b) in zip(ticks, ticks.dropFirst()) { #expect(b - a == 1000, "no tick missed: \(ids)") }
    }

    /// Moves a schedule's next tick by `ms` (back: as if nothing had advanced it for a while),
    /// and makes it due now.
    static func backdate(_ queue: JobQueue, _ id: String, by ms: Int64) async throws {
        let key = queue.core.keys.schedule(id)
        let next = try #require(try await queue.client.send(RedisCommand("HGET", key, ScheduleField.nextTick.rawValue)).string.flatMap { Int64($0) })
        try await setNextTick(queue, id, next - ms)
    }

    static func setNextTick(_ queue: JobQueue, _ id: String, _ ms: Int64) async throws {
        _ = try await queue.client.send(RedisCommand("HSET", queue.core.keys.schedule(id), ScheduleField.nextTick.rawValue, ms))
        _ = try await queue.client.send(RedisCommand("ZADD", queue.core.keys.scheduleDue, 0, id))
    }

    /// The queue's events now (no waiting: for what a call just did).
    static func events(_ queue: JobQueue) async throws -> [QueueEvent] {
        let rows = try await queue.client.send(RedisCommand("XRANGE", queue.core.keys.events, "-", "+")).array ?? []
        return rows.compactMap { row in
            guard let entry = row.array, entry.count == 2, let flat = entry[1].array else { return nil }
            return QueueEvent(streamID: entry[0].string ?? "", flat: flat)
        }
    }

    @Test(
        "misfire policies: ticks missed beyond the grace are skipped, fired once, or caught up",
        arguments: [(MisfirePolicy.skip, 0), (.fireOnce, 1), (.catchUp(max: 3), 3)])
    func misfire(_ policy: MisfirePolicy, _ expectedMissedJobs: Int) async throws {
        let queue = try await uniqueQueue("misfire-\(policy)")
        // Ticks every minute half a minute off now: none near the grace or the lead.
        try await queue.upsertSchedule(
            id: "m", .every(.minutes(1), startingAt: Date(timeIntervalSinceNow: -3630)), job: .init(name: "tick", payload: .json("{}")),
            options: .init(misfire: policy, misfireGrace: .seconds(1)))
        // Ten ticks missed.
        try await Self.backdate(queue, "m", by: 10 * 60_000)
        let pass = try await queue.advanceSchedules()
        #expect(pass.advanced == 1)
        let events = try await Self.events(queue)
        let made = events.filter { $0.kind == .scheduled }
        #expect(made.count == expectedMissedJobs)
        #expect(made.allSatisfy { $0.state == .waiting }, "missed ticks run now")
        let skipped = events.filter { $0.kind == .skipped }
        #expect(skipped.count == (expectedMissedJobs == 10 ? 0 : 1))
        let skip = try #require(skipped.first?.skip)
        #expect(skip.reason == "misfire" && skip.count == 10 - expectedMissedJobs)
        let s = try #require(try await queue.schedule(id: "m"))
        #expect(s.skipped == 10 - expectedMissedJobs && s.lastSkipReason == "misfire")
        #expect(try #require(s.nextTick) > Date(), "it goes on from the next tick to come")
        if case .catchUp = policy {
            // The latest three, in order.
            let ticks = made.compactMap { $0.tick?.epochMs }
            #expect(ticks == ticks.sorted() && Set(ticks).count == 3)
        }
    }

    @Test("overlap skipIfRunning: a tick while the previous run runs is skipped; cancelPrevious cancels it through jobq's cancel")
    func overlap() async throws {
        for policy in [OverlapPolicy.skipIfRunning, .cancelPrevious] {
            let queue = try await uniqueQueue("overlap-\(policy)")
            let runs = Runs()
            try await queue.upsertSchedule(
                id: "o", .every(.seconds(1)), job: .init(name: "tick", payload: .json("{}")), options: .init(overlap: policy))
            try await withWorker(queue, handlers: Self.handlers(runs, hold: .seconds(30))) { _ in
                try await eventually(30, "the first run started") { runs.all.count >= 1 }
                if policy == .skipIfRunning {
                    try await queue.expectEvents(.skipped, count: 2)
                    #expect(runs.all.count == 1, "no second run while the first runs")
                } else {
                    let cancelled = try await queue.expectEvents(.cancelled)
                    #expect(cancelled.first?.jobID == runs.all.first)
                    try await eventually(30, "the next tick ran") { runs.all.count >= 2 }
                }
            }
            try await queue.removeSchedule(id: "o")
        }
    }

    @Test("upsert with a new spec replaces the tick made ahead; pause and remove leave no ghost tick; resume starts from now")
    func changes() async throws {
        let queue = try await uniqueQueue()
        try await queue.upsertSchedule(id: "c", .every(.hours(1)), job: .init(name: "tick", payload: .json("{}")))
        // The next tick within the lead: one pass makes it ahead, delayed.
        try await Self.setNextTick(queue, "c", Date().epochMs + 3000)
        _ = try await queue.advanceSchedules()
        let ahead = try await queue.members(queue.core.keys.delayed)
        #expect(ahead.count == 1 && ahead[0].hasPrefix("c@"))
        let changed = try await queue.upsertSchedule(id: "c", .cron("0 3 * * *"), job: .init(name: "tick", payload: .json("{}")))
        #expect(changed.change == .changed)
        #expect(try await queue.members(queue.core.keys.delayed).isEmpty, "the old spec's tick is gone")
        #expect(try await queue.inspector.job(ahead[0]) == nil)
        let s = try #require(try await queue.schedule(id: "c"))
        #expect(s.spec == .cron("0 3 * * *") && s.nextTick.map { Calendar(identifier: .gregorian).dateComponents(in: .gmt, from: $0).hour } == 3)

        // Pause while a tick waits ahead: it is removed; nothing is made while paused.
        // (Its next tick set 3 s ahead each time: within the lead, and not yet due however slow
        // the machine.)
        try await queue.upsertSchedule(id: "p", .every(.minutes(1)), job: .init(name: "tick", payload: .json("{}")))
        try await Self.setNextTick(queue, "p", Date().epochMs + 3000)
        _ = try await queue.advanceSchedules()
        #expect(try await queue.members(queue.core.keys.delayed).contains { $0.hasPrefix("p@") })
        #expect(try await queue.pauseSchedule(id: "p"))
        #expect(try await queue.pauseSchedule(id: "p") == false, "already paused")
        #expect(!(try await queue.members(queue.core.keys.delayed).contains { $0.hasPrefix("p@") }))
        #expect(try await queue.advanceSchedules().advanced == 0)
        let paused = try #require(try await queue.schedule(id: "p"))
        #expect(paused.isPaused && paused.nextRun == nil)
        #expect(try await queue.resumeSchedule(id: "p"))
        let resumed = try #require(try await queue.schedule(id: "p"))
        #expect(try #require(resumed.nextTick) > Date(timeIntervalSinceNow: -1))

        // Remove with a tick ahead: no ghost.
        try await Self.setNextTick(queue, "p", Date().epochMs + 3000)
        _ = try await queue.advanceSchedules()
        #expect(try await queue.members(queue.core.keys.delayed).contains { $0.hasPrefix("p@") })
        #expect(try await queue.removeSchedule(id: "p"))
        #expect(!(try await queue.members(queue.core.keys.delayed).contains { $0.hasPrefix("p@") }))
        #expect(try await queue.schedule(id: "p") == nil)
        #expect(try await queue.removeSchedule(id: "p") == false)
        await #expect(throws: JobQError.self) { try await queue.pauseSchedule(id: "p") }
        #expect(try await queue.schedules().map(\.id) == ["c"])
    }

    @Test("a step planned before a change (a scheduler frozen past its claim) is refused whole: no job, the schedule as the change left it")
    func staleStep() async throws {
        let queue = try await uniqueQueue()
        try await queue.upsertSchedule(id: "st", .every(.minutes(1)), job: .init(name: "tick", payload: .json("{}")))
        try await Self.setNextTick(queue, "st", Date().epochMs + 3000)
        // Claim and plan, as a scheduler does — then freeze (the step is held back).
        let due = try await queue.core.call(queue.core.dueSchedulesCall(most: 10))
        let s = try #require(due.schedules.first)
        let step = Scheduling.plan(s, timing: try s.spec.timing(), now: due.now)
        #expect(step.ticks.count == 1)
        // Meanwhile another process changes the schedule; then the frozen one wakes.
        #expect(try await queue.upsertSchedule(id: "st", .every(.hours(1)), job: .init(name: "tick", payload: .json("{}"))).change == .changed)
        #expect(try await queue.core.call(queue.core.advanceSchedulesCall([(s, step)])) == [.stale], "stale: refused")
        #expect(try await queue.members(queue.core.keys.delayed).isEmpty)
        let events = try await Self.events(queue)
        #expect(events.filter { $0.kind == .scheduled }.isEmpty)
        let after = try #require(try await queue.schedule(id: "st"))
        #expect(after.spec == .every(.hours(1)) && after.fired == 0)
        // A second, older step for the same tick (a repeat) is refused the same way.
        #expect(try await queue.core.call(queue.core.advanceSchedulesCall([(s, step)])) == [.stale])
    }

    @Test("schedules advanced together stand alone: a step whose write fails is undone and kept due, the others are applied")
    func failedStepInBatch() async throws {
        let queue = try await uniqueQueue()
        try await queue.upsertSchedule(id: "a", .every(.minutes(1)), job: .init(name: "tick", payload: .json("{}"), options: .init(group: "g1")))
        try await queue.upsertSchedule(id: "b", .every(.minutes(1)), job: .init(name: "tick", payload: .json("{}")))
        let tick = Date().epochMs - 100
        try await Self.setNextTick(queue, "a", tick)
        try await Self.setNextTick(queue, "b", tick)
        // Group g1's waiting line is taken by a key of another type: a's tick job cannot be queued.
        _ = try await queue.client.send(RedisCommand("SET", queue.core.keys.groupWaiting("g1"), "x"))
        // Claim and plan both, as a scheduler does; apply them in one call.
        let due = try await queue.core.call(queue.core.dueSchedulesCall(most: 10))
        #expect(due.schedules.map(\.id) == ["a", "b"])
        let steps = try due.schedules.map { s in (s, Scheduling.plan(s, timing: try s.spec.timing(), now: due.now)) }
        let outcomes = try await queue.core.call(queue.core.advanceSchedulesCall(steps))
        #expect(outcomes.count == 2)
        if case .failed(let reply) = outcomes.first {
            #expect(reply.errorMessage?.contains("WRONGTYPE") == true)
        } else {
            Issue.record("a's step should fail: \(outcomes)")
        }
        if case .applied(let added, _) = outcomes.last { #expect(added >= 1) } else { Issue.record("b's step should apply: \(outcomes)") }
        let a = try #require(try await queue.schedule(id: "a"))
        let b = try #require(try await queue.schedule(id: "b"))
        #expect(a.fired == 0 && a.nextTick == Date(epochMs: tick), "a is not advanced")
        #expect(b.fired >= 1 && b.nextTick.map { $0 > Date(epochMs: tick) } == true, "b is")
        let aJob = ScheduleTiming.jobID(schedule: "a", tick: tick)
        #expect(try await queue.inspector.job(aJob) == nil, "a's job is undone")
        #expect(try await queue.inspector.job(ScheduleTiming.jobID(schedule: "b", tick: tick))?.state == .waiting)
        // Through the pass, the same failure is the error it throws.
        try await Self.setNextTick(queue, "a", tick)
        let error = await #expect(throws: JobQError.self) { try await queue.advanceSchedulesOnce(most: 10) }
        #expect(error?.code == .keyConflict)
        // The key put right, a's step goes through as it would have.
        _ = try await queue.client.send(RedisCommand("DEL", queue.core.keys.groupWaiting("g1")))
        try await Self.setNextTick(queue, "a", tick)
        let pass = try await queue.advanceSchedulesOnce(most: 10)
        #expect(pass.added >= 1)
        #expect(try await queue.inspector.job(aJob)?.state == .waiting)
    }

    @Test("a late step makes the due ticks and one ahead: the last run is the latest due tick, the next run the one ahead")
    func lateStepRuns() async throws {
        let queue = try await uniqueQueue()
        try await queue.upsertSchedule(id: "late", .every(.seconds(1)), job: .init(name: "tick", payload: .json("{}")))
        // Its scheduler was away for about 3.5 s (within the misfire grace): one step makes them all.
        try await Self.setNextTick(queue, "late", Date().epochMs - 3500)
        let pass = try await queue.advanceSchedulesOnce(most: 10)
        #expect(pass.added >= 4)
        let s = try #require(try await queue.schedule(id: "late"))
        let last = try #require(s.lastRun, "the latest due tick")
        #expect(last.state == .waiting && last.tick <= Date())
        let next = try #require(s.nextRun)
        #expect(next > last.tick && next.timeIntervalSince(last.tick) <= 1.001, "the tick made ahead follows it")
    }

    @Test("trigger adds one extra run now; the ticks go on")
    func trigger() async throws {
        let queue = try await uniqueQueue()
        try await queue.upsertSchedule(id: "t", .cron("0 0 1 1 *"), job: .init(name: "tick", payload: .json(#"{"x":1}"#), options: .init(attempts: 7)))
        let added = try await queue.triggerSchedule(id: "t")
        let job = try #require(try await queue.inspector.job(added.id))
        #expect(job.state == .waiting && job.scheduleID == "t" && job.options.attempts == 7 && job.payload.bytes == Array(#"{"x":1}"#.utf8))
        await #expect(throws: JobQError.self) { try await queue.triggerSchedule(id: "nope") }
        // Obliterating the queue takes its schedules with it: no tick of a queue that is gone.
        _ = try await queue.advanceSchedules()
        _ = try await queue.inspector.obliterate(force: true)
        #expect(try await queue.schedules().isEmpty)
        let left = try await queue.allKeys()
        #expect(left.isEmpty, "\(left)")
    }

    @Test("a paused queue: ticks are still added (like any add) and run on resume")
    func pausedQueue() async throws {
        let queue = try await uniqueQueue()
        let runs = Runs()
        try await queue.inspector.pause()
        try await queue.upsertSchedule(id: "q", .every(.seconds(1)), job: .init(name: "tick", payload: .json("{}")))
        try await withWorker(queue, handlers: Self.handlers(runs)) { _ in
            try await queue.expectEvents(.scheduled, count: 3)
            #expect(runs.all.isEmpty, "nothing runs while the queue is paused")
            try await queue.inspector.resume()
            try await eventually(30, "the waiting ticks ran") { runs.all.count >= 3 }
        }
        #expect(Set(runs.all).count == runs.all.count)
    }

    @Test("bad specs are refused with the field named and nothing stored; hostile ids and names are kept intact")
    func refused() async throws {
        let queue = try await uniqueQueue()
        let job = JobQueue.NewJob(name: "tick", payload: .json("{}"))
        for (spec, field) in [
            (ScheduleSpec.cron("61 * * * *"), "minute"), (.cron("0 0 * * *", timeZone: "Nowhere/Land"), "time zone"),
            (.every(.milliseconds(10)), "every"), (.cron("0 0 31 2 *"), "never fire"),
        ] {
            do {
                try await queue.upsertSchedule(id: "bad", spec, job: job)
                Issue.record("\(spec) was accepted")
            } catch {
                #expect(error.code == .invalidSchedule && error.detail.contains(field), "\(error)")
            }
        }
        await #expect(throws: JobQError.self) {
            try await queue.upsertSchedule(id: "bad", .every(.seconds(5)), job: .init(name: "tick", payload: .json("{}"), options: .init(jobID: "x")))
        }
        await #expect(throws: JobQError.self) { try await queue.upsertSchedule(id: "", .every(.seconds(5)), job: job) }
        await #expect(throws: JobQError.self) { try await queue.upsertSchedule(id: "a\nb", .every(.seconds(5)), job: job) }
        #expect(try await queue.schedules().isEmpty, "nothing stored")
        let hostile = "r{e}p:o@rt ✓ 'x' \"y\""
        try await queue.upsertSchedule(id: hostile, .every(.seconds(5)), job: .init(name: "n {w} ✓", payload: .json("{}")))
        let s = try #require(try await queue.schedule(id: hostile))
        #expect(s.id == hostile && s.jobName == "n {w} ✓")
    }
}
