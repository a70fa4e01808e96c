import Foundation

/// The builders of the schedules' four scripts (`docs/schedules.md`).
extension QueueCore {
    /// What `upsertSchedule-7` did.
    enum UpsertOutcome: Int, Sendable {
        case unchanged = 0
        case created = 1
        case changed = 2
    }

    /// `upsertSchedule-7`. `spec` holds the SPEC fields as name, value pairs.
    func upsertScheduleCall(_ id: String, spec: [(ScheduleField, any RedisArgument)], firstTick: Int64, advanceAt: Int64) -> ScriptCall<
        (UpsertOutcome, Int64?)
    > {
        var arguments: [any RedisArgument] = [id, firstTick, advanceAt, maxLen, sharded ? "1" : "0"]
        for (field, value) in spec {
            arguments.append(field.rawValue)
            arguments.append(value)
        }
        let script = scripts.upsertSchedule
        let queue = name
        return ScriptCall(script, keys: scheduleChangeKeys(id), arguments: arguments, idempotent: true) { reply throws(JobQError) in
            guard let items = reply.array, items.count == 2, let code = items[0].int, let outcome = UpsertOutcome(rawValue: code) else {
                throw QueueCore.unexpected(reply, script, queue: queue)
            }
            return (outcome, items[1].int.map(Int64.init))
        }
    }

    enum ScheduleAction: String, Sendable {
        case pause, resume, remove
    }

    /// `changeSchedule-7`: nil when there is no such schedule; else whether it changed
    /// (false: already paused, or not paused) and the tick job it removed.
    func changeScheduleCall(_ id: String, _ action: ScheduleAction, firstTick: Int64 = 0, advanceAt: Int64 = 0) -> ScriptCall<
        (changed: Bool, removedJob: String?)?
    > {
        let arguments: [any RedisArgument] = [id, action.rawValue, firstTick, advanceAt, maxLen, sharded ? "1" : "0"]
        let script = scripts.changeSchedule
        let queue = name
        return ScriptCall(script, keys: scheduleChangeKeys(id), arguments: arguments, idempotent: true) { reply throws(JobQError) in
            guard let items = reply.array, items.count == 2, let code = items[0].int else { throw QueueCore.unexpected(reply, script, queue: queue) }
            switch code {
            case ScriptStatus.applied:
                let removed = items[1].string ?? ""
                return (true, removed.isEmpty ? nil : removed)
            case ScriptCode.okAlready.rawValue: return (false, nil)
            case ScriptCode.notFound.rawValue: return nil
            default: throw QueueCore.unexpected(reply, script, queue: queue)
            }
        }
    }

    struct DueSchedules: Sendable {
        let now: Int64
        let nextMs: Int?
        let schedules: [StoredSchedule]
        /// Ids whose hash jobq cannot read.
        let unreadable: [String]
    }

    /// `dueSchedules-2`.
    func dueSchedulesCall(most: Int) -> ScriptCall<DueSchedules> {
        let script = scripts.dueSchedules
        let queue = name
        return ScriptCall(script, keys: dueSchedulesKeys, arguments: [Scheduling.claim, min(max(most, 1), 1000)], idempotent: true) {
            reply throws(JobQError) in
            guard let items = reply.array, items.count >= 2, items.count % 2 == 0, let now = items[0].int, let next = items[1].int else {
                throw QueueCore.unexpected(reply, script, queue: queue)
            }
            var schedules: [StoredSchedule] = []
            var unreadable: [String] = []
            var i = 2
            while i + 1 < items.count {
                guard let id = items[i].string, let fields = items[i + 1].array else { throw QueueCore.unexpected(reply, script, queue: queue) }
                if let s = StoredSchedule(id: id, flat: fields) { schedules.append(s) } else { unreadable.append(id) }
                i += 2
            }
            return DueSchedules(now: Int64(now), nextMs: next < 0 ? nil : next, schedules: schedules, unreadable: unreadable)
        }
    }

    /// What `advanceSchedules-13` did with one step.
    enum StepOutcome: Sendable, Equatable {
        case applied(added: Int, skipped: Int)
        /// Another scheduler advanced it, or it changed, was paused or is gone: nothing written.
        case stale
        /// A write failed (Redis's error reply): the job being added was undone and the
        /// schedule not advanced.
        case failed(RedisReply)
    }

    /// The most ticks one `advanceSchedules-13` call makes (the script refuses more).
    static let ticksPerAdvance = 1000

    /// `advanceSchedules-13`: one outcome per step, in order. At most 1,000 steps and 1,000
    /// ticks in all (``advanceSchedulesCalls(_:)`` splits a longer list).
    func advanceSchedulesCall(_ steps: [(StoredSchedule, ScheduleStep)]) -> ScriptCall<[StepOutcome]> {
        var arguments: [any RedisArgument] = [maxLen, sharded ? "1" : "0", steps.count]
        for (s, step) in steps {
            let fields = s.recordFields
            arguments +=
                [
                    s.id, s.version, s.nextTick ?? 0, step.nextTick, step.advanceAt, s.priority, step.misfired, step.firstMissed,
                    step.lastMissed, step.ticks.count, fields.count / 2,
                ] as [any RedisArgument]
            for t in step.ticks {
                arguments.append(t.tick)
                arguments.append(t.jobID)
                arguments.append(t.due)
            }
            arguments += fields
        }
        let script = scripts.advanceSchedules
        let queue = name
        let count = steps.count
        return ScriptCall(script, keys: advanceSchedulesKeys, arguments: arguments, idempotent: true) { reply throws(JobQError) in
            guard let items = reply.array, items.count == 3 * count else { throw QueueCore.unexpected(reply, script, queue: queue) }
            var out: [StepOutcome] = []
            out.reserveCapacity(count)
            for i in 0..<count {
                let code = items[3 * i].int
                switch code {
                case ScriptStatus.applied:
                    guard let added = items[3 * i + 1].int, let skipped = items[3 * i + 2].int else {
                        throw QueueCore.unexpected(reply, script, queue: queue)
                    }
                    out.append(.applied(added: added, skipped: skipped))
                case ScriptStatus.nothing, ScriptCode.notFound.rawValue: out.append(.stale)
                case ScriptStatus.writeFailed: out.append(.failed(.error(items[3 * i + 1].string ?? "ERR advanceSchedules: a step failed")))
                default: throw QueueCore.unexpected(reply, script, queue: queue)
                }
            }
            return out
        }
    }

    /// The steps as `advanceSchedules-13` calls, each within its limits.
    func advanceSchedulesCalls(_ steps: [(StoredSchedule, ScheduleStep)]) -> [ScriptCall<[StepOutcome]>] {
        var calls: [ScriptCall<[StepOutcome]>] = []
        var part: [(StoredSchedule, ScheduleStep)] = []
        var ticks = 0
        for (s, step) in steps {
            if !part.isEmpty, ticks + step.ticks.count > Self.ticksPerAdvance || part.count == 1000 {
                calls.append(advanceSchedulesCall(part))
                part = []
                ticks = 0
            }
            part.append((s, step))
            ticks += step.ticks.count
        }
        if !part.isEmpty { calls.append(advanceSchedulesCall(part)) }
        return calls
    }
}
