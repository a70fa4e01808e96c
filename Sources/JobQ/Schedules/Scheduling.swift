import Foundation

/// One step of one schedule, planned from its stored state and the Redis clock: which ticks
/// become jobs now, how many were missed and skipped, and where the schedule goes next.
struct ScheduleStep: Sendable, Equatable {
    struct Tick: Sendable, Equatable {
        let tick: Int64
        let jobID: String
        let due: Int64
    }
    var ticks: [Tick] = []
    var misfired = 0
    var firstMissed: Int64 = 0
    var lastMissed: Int64 = 0
    /// 0: the schedule never fires again.
    var nextTick: Int64 = 0
    var advanceAt: Int64 = 0
}

/// Plans and applies schedule steps (`docs/schedules.md`). Any process may do it: the scripts
/// make each tick one job whoever races.
enum Scheduling {
    /// How far ahead of its time a tick's job is made (overlap `allow`): it waits in the
    /// delayed set and starts on time through the delayed-job timer.
    static let lead: Int64 = 5000
    /// How long a claimed schedule is hidden from other schedulers; a claimer that dies is
    /// replaced after this.
    static let claim: Int64 = 3000
    /// Ticks made per step at most.
    static let ticksPerStep = 1000
    /// Missed ticks counted one by one at most; beyond, the count is a lower bound.
    static let enumerationCap = 200_000

    static func plan(_ s: StoredSchedule, timing: ScheduleTiming, now: Int64, lead: Int64 = lead) -> ScheduleStep {
        var step = ScheduleStep()
        guard let first = s.nextTick else { return step }
        let grace = Int64(s.options.misfireGrace.milliseconds)
        let missedBy = now - grace
        var cursor: Int64? = first
        var kept: [Int64] = []
        var keep = 0
        switch s.options.misfire {
        case .skip: keep = 0
        case .fireOnce: keep = 1
        case .catchUp(let max): keep = max
        }
        var missed = 0
        while let t = cursor, t <= missedBy, missed < enumerationCap {
            if missed == 0 { step.firstMissed = t }
            missed += 1
            step.lastMissed = t
            if case .catchUp = s.options.misfire {
                kept.append(t)
                if kept.count > keep { kept.removeFirst(kept.count - keep) }
            } else if keep == 1 && kept.isEmpty {
                kept.append(t)
            }
            cursor = timing.next(after: t)
        }
        if let t = cursor, t <= missedBy {
            // More missed ticks than are worth counting (a per-second schedule down for days):
            // go on from the last day before the grace.
            var c = timing.next(after: missedBy - 86_400_000)
            if case .catchUp = s.options.misfire { kept = [] }
            var counted = 0
            while let t = c, t <= missedBy, counted < enumerationCap {
                if case .catchUp = s.options.misfire {
                    kept.append(t)
                    if kept.count > keep { kept.removeFirst(kept.count - keep) }
                }
                step.lastMissed = t
                missed += 1
                counted += 1
                c = timing.next(after: t)
            }
            cursor = c.map { $0 <= missedBy ? timing.next(after: missedBy) : $0 } ?? nil
        }
        step.misfired = missed - kept.count
        var made = kept
        while let t = cursor, t <= now, made.count < ticksPerStep {
            made.append(t)
            cursor = timing.next(after: t)
        }
        if s.options.overlap != .allow, made.count > 1 {
            // Late ticks made together would overlap each other: skipIfRunning keeps the first
            // (the others would find it waiting), cancelPrevious the last (each would cancel the
            // one before). The others count as missed.
            let keep = s.options.overlap == .skipIfRunning ? made.first! : made.last!
            let dropped = made.filter { $0 != keep }
            if step.misfired == 0 { step.firstMissed = dropped.first! }
            step.firstMissed = min(step.firstMissed, dropped.first!)
            step.lastMissed = max(step.lastMissed, dropped.last!)
            step.misfired += dropped.count
            made = [keep]
        }
        if s.options.overlap == .allow, let t = cursor, t > now, t <= now + lead, made.count < ticksPerStep {
            made.append(t)
            cursor = timing.next(after: t)
        }
        let jitter = Int64(s.options.jitter.milliseconds)
        step.ticks = made.map {
            .init(tick: $0, jobID: ScheduleTiming.jobID(schedule: s.id, tick: $0), due: $0 + ScheduleTiming.jitter(schedule: s.id, tick: $0, upTo: jitter))
        }
        step.nextTick = cursor ?? 0
        if let next = cursor {
            if next <= now {
                step.advanceAt = now  // more to make than one step makes: again at once
            } else if s.options.overlap == .allow {
                // One tick ahead at a time: the next is made once the one made ahead is due —
                // halfway to it, or its lead before it if that is later. Not at the tick itself:
                // there the fleet's ticks of that instant are being taken.
                let due = made.last.map { max($0, now) } ?? now
                step.advanceAt = max(due + (next - due) / 2, next - lead)
            } else {
                // The previous run's state decides the tick: look at it when the tick comes.
                step.advanceAt = next
            }
        }
        return step
    }
}

/// What one pass over a queue's due schedules did.
public struct SchedulePass: Sendable, Hashable {
    /// Schedules claimed and advanced (or found changed by another process).
    public var advanced = 0
    /// Jobs added, and ticks skipped.
    public var added = 0
    public var skipped = 0
    /// Until the next schedule is due to be advanced, in ms (nil: none is).
    public var nextDueMs: Int?
}

extension QueueCore {
    /// Claims the schedules due (up to `most`), plans each step and applies them all in one
    /// `advanceSchedules-13` call (more only past its limit of ticks). A schedule whose hash
    /// jobq cannot read is left to its claim (and logged by the caller through `unreadable`).
    func advanceSchedules(most: Int = 100, unreadable: (String) -> Void = { _ in }) async throws(JobQError) -> SchedulePass {
        let due = try await call(dueSchedulesCall(most: most))
        var pass = SchedulePass()
        pass.nextDueMs = due.nextMs
        var steps: [(StoredSchedule, ScheduleStep)] = []
        steps.reserveCapacity(due.schedules.count)
        for s in due.schedules {
            guard let timing = try? s.spec.timing() else {
                unreadable(s.id)
                continue
            }
            let step = Scheduling.plan(s, timing: timing, now: due.now)
            steps.append((s, step))
            if step.nextTick != 0 {
                let left = Int(max(0, step.advanceAt - due.now))
                pass.nextDueMs = min(pass.nextDueMs ?? left, left)
            }
        }
        for s in due.unreadable { unreadable(s) }
        guard !steps.isEmpty else { return pass }
        let calls = advanceSchedulesCalls(steps)
        var firstError: JobQError?
        if calls.count == 1 {
            pass.add(try await call(calls[0]), core: self, firstError: &firstError)
        } else {
            var batch = RedisBatch()
            for c in calls { batch.append(c) }
            let replies = try await execute(batch, idempotent: true)
            for (advance, reply) in zip(calls, replies) {
                do {
                    try check(reply, script: advance.script, jobID: nil)
                    pass.add(try advance.decode(reply), core: self, firstError: &firstError)
                } catch {
                    firstError = firstError ?? error
                }
            }
        }
        if let firstError { throw firstError }
        return pass
    }
}

extension SchedulePass {
    fileprivate mutating func add(_ outcomes: [QueueCore.StepOutcome], core: QueueCore, firstError: inout JobQError?) {
        for outcome in outcomes {
            switch outcome {
            case .applied(let added, let skipped):
                advanced += 1
                self.added += added
                self.skipped += skipped
            case .stale:
                advanced += 1
            case .failed(let reply):
                do throws(JobQError) {
                    try core.check(reply, script: core.scripts.advanceSchedules, jobID: nil)
                } catch {
                    firstError = firstError ?? error
                }
            }
        }
    }
}
