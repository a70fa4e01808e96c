public import Foundation

/// Recurring jobs (`docs/schedules.md`): a schedule adds one job per tick, whichever and however
/// many workers advance it. Stored under the queue's hash tag.
extension JobQueue {
    /// What an upsert did.
    public struct ScheduleUpsert: Sendable, Hashable {
        public enum Change: String, Sendable, Hashable {
            /// A new schedule.
            case created
            /// The spec, the job or a policy changed: it takes effect from the next tick (the tick
            /// made ahead under the old spec, not yet due, was removed).
            case changed
            /// The same spec and job were stored already: nothing was written.
            case unchanged
        }
        public let change: Change
        /// The schedule's next tick not yet made into a job.
        public let nextTick: Date?
    }

    /// Creates a schedule, or changes the one with this id.
    ///
    /// ```swift
    /// try await queue.upsertSchedule(
    ///     id: "nightly-report", .cron("0 2 * * *", timeZone: "Europe/Berlin"),
    ///     job: .init(name: "report", payload: .json(#"{"kind":"daily"}"#), options: .init(attempts: 5)),
    ///     options: .init(overlap: .skipIfRunning))
    /// ```
    /// - Parameters:
    ///   - id: 1–150 bytes, no control characters. Each tick's job id is `<id>@<tick, UTC>`.
    ///   - job: the job each tick adds; its options may not set an id, a delay or a run-at time
    ///     (the schedule makes those).
    /// - Throws: ``JobQError`` `invalidSchedule` (the field named; nothing stored),
    ///   `invalidJobName`, `invalidOptions`, `tooLarge`, or a Redis failure.
    @discardableResult
    public func upsertSchedule(id: String, _ spec: ScheduleSpec, job: NewJob, options: ScheduleOptions = .init()) async throws(JobQError)
        -> ScheduleUpsert
    {
        try Self.validate(scheduleID: id, queue: name)
        let timing: ScheduleTiming
        do {
            timing = try spec.timing()
            try options.validate()
        } catch {
            throw JobQError(.invalidSchedule, queue: name, detail: "schedule \(CronExpression.shown(id)): \(error.detail)")
        }
        try Self.validate(jobName: job.name, queue: name)
        try job.options.validate(queue: name)
        if job.options.jobID != nil || job.options.delay != nil || job.options.runAt != nil {
            throw JobQError(
                .invalidSchedule, queue: name,
                detail: "schedule \(CronExpression.shown(id)): the job's options may not set an id, a delay or a run-at time; each tick makes its own")
        }
        guard job.payload.bytes.count <= settings.maxPayloadBytes else {
            throw JobQError(.tooLarge, queue: name, detail: "the payload is \(job.payload.bytes.count) bytes; the limit is \(settings.maxPayloadBytes) bytes")
        }
        var fields: [(ScheduleField, any RedisArgument)] = []
        switch spec.kind {
        case .cron(let expression, let zone):
            fields.append((.kind, "cron"))
            fields.append((.expression, expression.trimmingCharacters(in: .whitespaces)))
            if zone != "UTC" { fields.append((.zone, zone)) }
        case .every(let interval, let start):
            fields.append((.kind, "every"))
            fields.append((.expression, String(interval.milliseconds)))
            if let start { fields.append((.anchor, String(start.epochMs))) }
        }
        fields.append((.name, job.name))
        fields.append((.payload, job.payload.bytes))
        if job.payload.encoding == .bytes { fields.append((.encoding, JobField.bytesEncoding)) }
        let stored = job.options.storedFields
        if !stored.isEmpty {
            let json = (try? JSONEncoder().encode(stored.map { [$0.0, $0.1] })) ?? Data("[]".utf8)
            fields.append((.options, String(decoding: json, as: UTF8.self)))
        }
        if job.options.priority.value != 0 { fields.append((.priority, String(job.options.priority.value))) }
        if options.misfire != .fireOnce { fields.append((.misfire, options.misfire.description)) }
        if options.overlap != .allow { fields.append((.overlap, options.overlap.rawValue)) }
        if options.jitter > .zero { fields.append((.jitter, String(options.jitter.milliseconds))) }
        if options.misfireGrace != .seconds(60) { fields.append((.grace, String(options.misfireGrace.milliseconds))) }

        let now = try await redisTime()
        guard let first = timing.next(after: now) else {
            throw JobQError(.invalidSchedule, queue: name, detail: "schedule \(CronExpression.shown(id)): \(spec) matches no time in the next 10 years")
        }
        let upsert = core.upsertScheduleCall(id, spec: fields, firstTick: first, advanceAt: Self.advanceAt(first, now: now, overlap: options.overlap))
        var batch = RedisBatch()
        let registration = core.registration()
        if let registration { batch.append(registration) }
        batch.append(upsert)
        let replies = try await core.execute(batch, idempotent: true)
        let reply = replies[registration == nil ? 0 : 1]
        try core.check(reply, script: upsert.script, jobID: nil)
        let (outcome, next) = try upsert.decode(reply)
        let change: ScheduleUpsert.Change =
            switch outcome {
            case .created: .created
            case .changed: .changed
            case .unchanged: .unchanged
            }
        return ScheduleUpsert(change: change, nextTick: next.map { Date(epochMs: $0) })
    }

    static func advanceAt(_ tick: Int64, now: Int64, overlap: OverlapPolicy) -> Int64 {
        overlap == .allow ? max(now, tick - Scheduling.lead) : tick
    }

    /// Checks a schedule id: 1–150 bytes of UTF-8 without control characters.
    public static func validate(scheduleID id: String, queue: String) throws(JobQError) {
        let bytes = id.utf8.count
        guard bytes >= 1, bytes <= 150 else {
            throw JobQError(.invalidSchedule, queue: queue, detail: "a schedule id is 1 to 150 bytes long; this one is \(bytes)")
        }
        if id.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
            throw JobQError(.invalidSchedule, queue: queue, detail: "a schedule id may not contain control characters")
        }
    }

    /// Every schedule of the queue, by id.
    public func schedules() async throws(JobQError) -> [Schedule] {
        var found = Set<String>()
        var cursor = "0"
        // SSCAN, bounded: 1,000 rounds of 1,000 at most.
        for _ in 0..<1000 {
            let reply: RedisReply
            do {
                reply = try await core.client.send(RedisCommand("SSCAN", core.keys.scheduleIDs, cursor, "COUNT", 1000), idempotent: true)
            } catch {
                throw JobQError(redis: error, queue: name)
            }
            try core.check(reply, script: nil, jobID: nil)
            guard let items = reply.array, items.count == 2 else { break }
            for id in items[1].array ?? [] { if let s = id.string { found.insert(s) } }
            cursor = items[0].string ?? "0"
            if cursor == "0" { break }
        }
        let ids = found.sorted()
        var out: [Schedule] = []
        var start = 0
        while start < ids.count {
            out += try await read(Array(ids[start..<min(start + 500, ids.count)]))
            start += 500
        }
        return out
    }

    /// One schedule; nil when there is none with this id.
    public func schedule(id: String) async throws(JobQError) -> Schedule? {
        try Self.validate(scheduleID: id, queue: name)
        return try await read([id]).first
    }

    private func read(_ ids: [String]) async throws(JobQError) -> [Schedule] {
        var batch = RedisBatch()
        for id in ids { batch.append(RedisCommand("HGETALL", core.keys.schedule(id))) }
        let replies = try await core.execute(batch, idempotent: true)
        var stored: [StoredSchedule] = []
        for (id, reply) in zip(ids, replies) {
            try core.check(reply, script: nil, jobID: nil)
            guard let flat = reply.array, !flat.isEmpty else { continue }
            guard let s = StoredSchedule(id: id, flat: flat) else {
                throw JobQError(
                    .keyConflict, queue: name,
                    detail: "schedule \(CronExpression.shown(id)): its hash \(core.keys.schedule(id)) holds fields jobq did not write")
            }
            stored.append(s)
        }
        let jobs = Array(Set(stored.flatMap { [$0.pendingJob, $0.lastJob].compactMap { $0 } }))
        var states: [String: JobState] = [:]
        if !jobs.isEmpty {
            var lookups = RedisBatch()
            for job in jobs { lookups.append(RedisCommand("HGET", core.keys.job(job), JobField.state.rawValue)) }
            for (job, reply) in zip(jobs, try await core.execute(lookups, idempotent: true)) {
                if let s = reply.string.flatMap(JobState.init(rawValue:)) { states[job] = s }
            }
        }
        return stored.map { $0.schedule(queue: name, states: states) }
    }

    /// Deletes a schedule, and its tick job not yet due (a run already due or running is left
    /// alone). Returns false when there was none.
    @discardableResult
    public func removeSchedule(id: String) async throws(JobQError) -> Bool {
        try Self.validate(scheduleID: id, queue: name)
        return try await core.call(core.changeScheduleCall(id, .remove)) != nil
    }

    /// Stops a schedule adding jobs (its tick job not yet due is removed). Returns false when it
    /// was paused already.
    /// - Throws: `notFound` when there is no such schedule.
    @discardableResult
    public func pauseSchedule(id: String) async throws(JobQError) -> Bool {
        try Self.validate(scheduleID: id, queue: name)
        guard let r = try await core.call(core.changeScheduleCall(id, .pause)) else { throw notFound(id) }
        return r.changed
    }

    /// Resumes a paused schedule from its next tick after now (the ticks while paused are not
    /// misfires). Returns false when it was not paused.
    /// - Throws: `notFound` when there is no such schedule.
    @discardableResult
    public func resumeSchedule(id: String) async throws(JobQError) -> Bool {
        try Self.validate(scheduleID: id, queue: name)
        guard let current = try await schedule(id: id) else { throw notFound(id) }
        guard current.isPaused else { return false }
        let timing: ScheduleTiming
        do {
            timing = try current.spec.timing()
        } catch {
            throw JobQError(.invalidSchedule, queue: name, detail: "schedule \(CronExpression.shown(id)): \(error.detail); upsert it again")
        }
        let now = try await redisTime()
        let first = timing.next(after: now) ?? 0
        let advanceAt = Self.advanceAt(first, now: now, overlap: current.options.overlap)
        guard let r = try await core.call(core.changeScheduleCall(id, .resume, firstTick: first, advanceAt: advanceAt)) else { throw notFound(id) }
        return r.changed
    }

    /// Adds one extra run of the schedule's job now (a generated id; its record names the
    /// schedule). The schedule's ticks go on as before.
    /// - Throws: `notFound` when there is no such schedule.
    @discardableResult
    public func triggerSchedule(id: String) async throws(JobQError) -> AddResult {
        try Self.validate(scheduleID: id, queue: name)
        guard let s = try await schedule(id: id) else { throw notFound(id) }
        let job = NewJob(name: s.jobName, payload: s.payload, options: s.jobOptions)
        try Self.validate(jobName: job.name, queue: name)
        let add = core.addJobCall(id: JobID.generate(), job: job, extraFields: [(JobField.schedule.rawValue, id)])
        return try await core.call(add)
    }

    /// One claim of at most `most` due schedules and their steps (for `jobq-bench`, which
    /// measures what a tick costs by the claim size).
    package func advanceSchedulesOnce(most: Int) async throws(JobQError) -> SchedulePass {
        try await core.advanceSchedules(most: most)
    }

    /// Advances the queue's due schedules once (what every worker does on its own; for a
    /// one-shot `jobq-admin schedule tick`). At most 10 rounds of 100.
    public func advanceSchedules() async throws(JobQError) -> SchedulePass {
        var total = SchedulePass()
        for _ in 0..<10 {
            let pass = try await core.advanceSchedules()
            total.advanced += pass.advanced
            total.added += pass.added
            total.skipped += pass.skipped
            total.nextDueMs = pass.nextDueMs
            guard pass.advanced > 0, pass.nextDueMs == 0 else { break }
        }
        return total
    }

    private func notFound(_ id: String) -> JobQError {
        JobQError(.notFound, queue: name, detail: "no schedule \(CronExpression.shown(id)) in this queue")
    }

    /// The Redis clock, ms.
    func redisTime() async throws(JobQError) -> Int64 {
        let reply: RedisReply
        do {
            reply = try await core.client.send(RedisCommand("TIME"), idempotent: true)
        } catch {
            throw JobQError(redis: error, queue: name)
        }
        guard let items = reply.array, items.count == 2, let s = items[0].string.flatMap(Int64.init), let us = items[1].string.flatMap(Int64.init)
        else {
            throw JobQError(.internalError, queue: name, detail: "TIME answered \(reply)")
        }
        return s * 1000 + us / 1000
    }
}
