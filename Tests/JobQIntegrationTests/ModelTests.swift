import Foundation
import LocalRedis
import Testing

@testable import JobQ
@testable import JobQRedis

/// A model-based test of the Lua layer: seeded random sequences of add / take / finish (every
/// outcome) / renew / expire-and-reap / cancel / retry / remove / pause / resume / obliterate,
/// driven against a real Redis and checked after every step against a small Swift model of the
/// states — one state per job, attempts and stalls counted as the model says, every key
/// accounted for, no TTLs.
///
/// Time is the model's to move: leases are an hour long and delays an hour away, and a step
/// "lets time pass" for one job by moving its deadline to 0 (an expired lease, a due delayed
/// job). `JOBQ_MODEL_SEED` and `JOBQ_MODEL_STEPS` replay or lengthen a run; a failure prints
/// the seed and the last steps.
@Suite("Lua layer against a model", .awaitedTeardown)
struct ModelTests {
    struct ModelJob {
        var id: String
        var state: JobState
        var priority: Int
        var sequence = 0
        var attempts = 0
        var maxAttempts: Int
        var maxStalls: Int
        var stalls = 0
        var token: String?
        var cancelRequested = false
        /// A delayed job whose due time the model moved into the past.
        var due = false
    }

    struct Mismatch: Error, CustomStringConvertible {
        let description: String
    }

    final class Run {
        let queue: JobQueue
        var rng: SplitMix64
        var jobs: [String: ModelJob] = [:]
        var order: [String] = []  // ids ever added, for picking
        var sequence = 0
        var paused = false
        var staleTokens: [(id: String, token: String)] = []
        var log: [String] = []
        var customIDs = ["c-1", "c-2", "c-3", "c-4"]

        init(queue: JobQueue, seed: UInt64) {
            self.queue = queue
            self.rng = SplitMix64(seed: seed)
        }

        var core: QueueCore { queue.core }

        func note(_ text: String) {
            log.append(text)
            if log.count > 40 { log.removeFirst(log.count - 40) }
        }

        func expect(_ condition: Bool, _ what: @autoclosure () -> String) throws {
            if !condition { throw Mismatch(description: what()) }
        }

        func enqueue(_ id: String) {
            sequence += 1
            jobs[id]?.state = .waiting
            jobs[id]?.sequence = sequence
            jobs[id]?.due = false
        }

        func pick(_ states: Set<JobState>) -> String? {
            let candidates = order.filter { jobs[$0].map { states.contains($0.state) } ?? false }
            return candidates.isEmpty ? nil : candidates[Int.random(in: 0..<candidates.count, using: &rng)]
        }

        // MARK: Steps

        func step() async throws {
            let roll = Int.random(in: 0..<100, using: &rng)
            switch roll {
            case 0..<18: try await add()
            case 18..<36: try await take()
            case 36..<56: try await finish()
            case 56..<62: try await renew()
            case 62..<68: try await expireAndReap()
            case 68..<74: try await makeDue()
            case 74..<80: try await cancel()
            case 80..<85: try await retry()
            case 85..<89: try await remove()
            case 89..<93: try await staleFinish()
            case 93..<97: try await togglePause()
            case 97..<99: try await counts()
            default:
                if Int.random(in: 0..<10, using: &rng) == 0 { try await obliterate() } else { try await counts() }
            }
        }

        func add() async throws {
            let live = jobs.count
            if live >= 60 { return try await remove() }
            let custom = Int.random(in: 0..<4, using: &rng) == 0 ? customIDs.randomElement(using: &rng) : nil
            let priority = [-5, 0, 0, 0, 5].randomElement(using: &rng)!
            let delayed = Int.random(in: 0..<5, using: &rng) == 0
            let attempts = Int.random(in: 1...3, using: &rng)
            let maxStalls = Int.random(in: 0...2, using: &rng)
            var options = JobOptions(jobID: custom, delay: delayed ? .seconds(3600) : nil, priority: JobPriority(priority), attempts: attempts)
            options.maxStalls = maxStalls
            options.backoff = .fixed(.zero)
            let result = try await queue.add(name: "m", payload: .json("{}"), options: options)
            note("add \(result.id) p=\(priority) delayed=\(delayed) attempts=\(attempts) maxStalls=\(maxStalls) → created=\(result.created) \(result.state)")
            if let existing = jobs[result.id] {
                try expect(!result.created && result.state == existing.state, "add of existing \(result.id): \(result), model \(existing.state)")
                return
            }
            try expect(result.created, "add \(result.id) should create")
            var job = ModelJob(id: result.id, state: delayed ? .delayed : .waiting, priority: priority, maxAttempts: attempts, maxStalls: maxStalls)
            if !delayed {
                sequence += 1
                job.sequence = sequence
            }
            jobs[result.id] = job
            order.append(result.id)
            try expect(result.state == job.state, "add \(result.id) state \(result.state), model \(job.state)")
        }

        /// The job a take must return (promoting due delayed jobs first), or nil.
        func expectedTake() -> String? {
            for id in jobs.values.filter({ $0.state == .delayed && $0.due }).map(\.id).sorted() { enqueue(id) }
            let waiting = jobs.values.filter { $0.state == .waiting }
            return waiting.min { ($0.priority, -$0.sequence) > ($1.priority, -$1.sequence) }?.id
        }

        func take() async throws {
            let lease = QueueCore.Lease(token: JobID.generate(), workerID: "model", length: .seconds(3600))
            let result = try await core.take(lease: lease)
            if paused {
                guard case .paused = result else { throw Mismatch(description: "take while paused: \(result)") }
                note("take → paused")
                return
            }
            let expected = expectedTake()
            switch result {
            case .job(let job, _):
                note("take → \(job.id) attempt \(job.attemptsMade)")
                try expect(job.id == expected, "take returned \(job.id), model expected \(expected ?? "nothing")")
                jobs[job.id]?.state = .active
                jobs[job.id]?.attempts += 1
                jobs[job.id]?.token = lease.token
                try expect(job.attemptsMade == jobs[job.id]?.attempts, "take \(job.id): attempt \(job.attemptsMade), model \(jobs[job.id]?.attempts ?? -1)")
            case .empty:
                note("take → empty")
                try expect(expected == nil, "take was empty, model expected \(expected ?? "")")
            case .paused:
                throw Mismatch(description: "take said paused; the model is not")
            case .limited(_, let limit):
                throw Mismatch(description: "take said limited (\(limit)); the model sets no limit")
            }
        }

        func finish() async throws {
            guard let id = pick([.active]), var job = jobs[id], let token = job.token else { return try await take() }
            let ends: [(String, QueueCore.RunEnd)] = [
                ("completed", .completed(result: Array("r".utf8))), ("completed", .completed(result: [])),
                ("failed-now", .failed(reason: "E", details: "d", retryDelayMs: 0)),
                ("failed-later", .failed(reason: "E", details: "d", retryDelayMs: 3_600_000)),
                ("failed-never", .failed(reason: "E", details: "d", retryDelayMs: nil)),
                ("unrecoverable", .unrecoverable(reason: "U", details: "d")),
                ("timeout", .timeout(details: "t", retryDelayMs: 0)), ("cancelled", .cancelled(reason: "c")), ("shutdown", .shutdown),
            ]
            let (name, end) = ends.randomElement(using: &rng)!
            let result = try await core.finish(id, token: token, end: end, next: nil)
            // The model's outcome order.
            var expected: JobState
            if name == "completed" {
                expected = .completed
            } else if job.cancelRequested || name == "cancelled" {
                expected = .cancelled
            } else if name == "shutdown" {
                expected = .waiting
                job.attempts -= 1
            } else {
                let retryable = name != "unrecoverable" && name != "failed-never" && job.attempts < job.maxAttempts
                expected = retryable ? (name == "failed-later" ? .delayed : .waiting) : .failed
            }
            note("finish \(id) \(name) → \(result)")
            guard case .applied(let state, _) = result else { throw Mismatch(description: "finish \(id) \(name): \(result), model \(expected)") }
            try expect(state == expected, "finish \(id) \(name): \(state), model \(expected)")
            job.token = nil
            job.state = expected
            staleTokens.append((id, token))
            jobs[id] = job
            if expected == .waiting { enqueue(id) }
        }

        func renew() async throws {
            var pairs = jobs.values.filter { $0.state == .active }.compactMap { j in j.token.map { (id: j.id, token: $0) } }
            let stale = staleTokens.suffix(3)
            pairs += stale
            guard !pairs.isEmpty else { return }
            let result = try await core.extendLeases(pairs.map { ($0.id, $0.token) }, length: .seconds(3600))
            let holding = Set(jobs.values.filter { $0.state == .active }.compactMap(\.token))
            let expectLost = Set(pairs.map(\.token)).subtracting(holding)
            let expectCancel = Set(jobs.values.filter { $0.state == .active && $0.cancelRequested }.compactMap(\.token))
            note("renew \(pairs.count) → renewed \(result.renewed) lost \(result.lost.count) cancel \(result.cancelRequested.count)")
            try expect(result.renewed == pairs.count - expectLost.count, "renewed \(result.renewed), model \(pairs.count - expectLost.count)")
            try expect(Set(result.lost) == expectLost, "lost \(result.lost), model \(expectLost)")
            try expect(Set(result.cancelRequested) == expectCancel, "cancel requested \(result.cancelRequested), model \(expectCancel)")
        }

        /// A worker died holding the job: its lease runs out, and the reaper recovers it.
        func expireAndReap() async throws {
            guard let id = pick([.active]), var job = jobs[id] else { return try await take() }
            _ = try await queue.client.send(RedisCommand("ZADD", core.keys.active, "XX", 0, id))
            let result = try await core.recoverStalled()
            job.stalls += 1
            job.attempts = max(0, job.attempts - 1)  // a stall never counts as an attempt
            if let token = job.token { staleTokens.append((id, token)) }
            job.token = nil
            var expected = (requeued: 0, failed: 0, cancelled: 0)
            if job.cancelRequested {
                job.state = .cancelled
                expected.cancelled = 1
            } else if job.stalls > job.maxStalls {
                job.state = .failed
                expected.failed = 1
            } else {
                expected.requeued = 1
            }
            jobs[id] = job
            if expected.requeued == 1 { enqueue(id) }
            note("expire+reap \(id) → \(result)")
            try expect(
                result.requeued == expected.requeued && result.failed == expected.failed && result.cancelled == expected.cancelled && result.remaining == 0,
                "reap \(id): \(result), model \(expected)")
        }

        func makeDue() async throws {
            guard let id = pick([.delayed]) else { return try await add() }
            _ = try await queue.client.send(RedisCommand("ZADD", core.keys.delayed, "XX", 0, id))
            jobs[id]?.due = true
            note("due \(id)")
        }

        func cancel() async throws {
            let id =
                Int.random(in: 0..<8, using: &rng) == 0
                ? "never-added" : (pick([.waiting, .delayed, .active, .completed, .failed, .cancelled]) ?? "never-added")
            let outcome = try await queue.cancel(id)
            note("cancel \(id) → \(outcome)")
            guard var job = jobs[id] else {
                try expect(outcome == .notFound, "cancel of unknown \(id): \(outcome)")
                return
            }
            switch job.state {
            case .waiting, .delayed:
                try expect(outcome == .cancelled, "cancel \(id) (\(job.state)): \(outcome)")
                job.state = .cancelled
                job.cancelRequested = true
            case .active:
                try expect(outcome == .cancelRequested(listeners: 0), "cancel \(id) (active): \(outcome)")
                job.cancelRequested = true
            case .completed, .failed, .cancelled:
                try expect(outcome == .alreadyFinished(job.state), "cancel \(id) (\(job.state)): \(outcome)")
            }
            jobs[id] = job
        }

        func retry() async throws {
            guard let id = pick([.failed, .cancelled, .waiting, .completed]) else { return }
            let outcome = try await queue.inspector.retry([id])
            note("retry \(id) → \(outcome)")
            guard var job = jobs[id] else { return }
            if job.state == .failed || job.state == .cancelled {
                try expect(outcome == [.retried], "retry \(id) (\(job.state)): \(outcome)")
                job.attempts = 0
                job.stalls = 0
                job.cancelRequested = false
                jobs[id] = job
                enqueue(id)
            } else {
                try expect(outcome == [.wrongState], "retry \(id) (\(job.state)): \(outcome)")
            }
        }

        func remove() async throws {
            guard let id = pick([.waiting, .delayed, .active, .completed, .failed, .cancelled]), let job = jobs[id] else { return }
            let outcome = try await queue.inspector.remove([id])
            note("remove \(id) → \(outcome)")
            if job.state == .active {
                try expect(outcome == [.isActive], "remove \(id) (active): \(outcome)")
            } else {
                try expect(outcome == [.removed(from: job.state)], "remove \(id) (\(job.state)): \(outcome)")
                jobs[id] = nil
                order.removeAll { $0 == id }
            }
        }

        /// A late finish from a run that no longer holds the job changes nothing.
        func staleFinish() async throws {
            guard let (id, token) = staleTokens.randomElement(using: &rng) else { return try await finish() }
            let result = try await core.finish(id, token: token, end: .completed(result: []), next: nil)
            note("stale finish \(id) → \(result)")
            switch result {
            case .leaseLost, .notFound: break
            case .alreadyApplied:
                // The same token's run ended, and the job has not been taken since.
                try expect(
                    jobs[id]?.token == nil && jobs[id]?.state != .active,
                    "stale finish \(id) reported alreadyApplied while \(jobs[id]?.state.rawValue ?? "gone")")
            case .applied(let state, _):
                throw Mismatch(description: "stale finish of \(id) was applied: \(state)")
            }
        }

        func togglePause() async throws {
            if paused {
                try expect(try await queue.inspector.resume(), "resume")
            } else {
                try expect(try await queue.inspector.pause(), "pause")
            }
            paused.toggle()
            note(paused ? "pause" : "resume")
        }

        func obliterate() async throws {
            _ = try await queue.inspector.obliterate(force: true)
            jobs = [:]
            order = []
            paused = false
            staleTokens = []
            note("obliterate")
            try await queue.inspector.setRetention(completed: 100_000, failed: 100_000, cancelled: 100_000)
        }

        // MARK: Checks

        func counts() async throws {
            let counts = try await queue.inspector.counts()
            for state in JobState.allCases {
                let model = jobs.values.filter { $0.state == state }.count
                try expect(counts[state] == model, "\(state): Redis \(counts[state]), model \(model)")
            }
            try expect(counts.paused == paused, "paused: Redis \(counts.paused), model \(paused)")
        }

        /// Every record, every key, no TTLs.
        func fullCheck() async throws {
            try await counts()
            for job in jobs.values {
                guard let record = try await queue.inspector.job(job.id) else { throw Mismatch(description: "\(job.id): no record, model \(job.state)") }
                try expect(record.state == job.state, "\(job.id): state \(record.state), model \(job.state)")
                try expect(record.attemptsMade == job.attempts, "\(job.id): attempts \(record.attemptsMade), model \(job.attempts)")
                try expect(record.stallCount == job.stalls, "\(job.id): stalls \(record.stallCount), model \(job.stalls)")
                try expect(record.cancelRequested == job.cancelRequested, "\(job.id): cancelRequested \(record.cancelRequested), model \(job.cancelRequested)")
                try expect(
                    (record.executionID == job.token) || job.token == nil, "\(job.id): execution \(record.executionID ?? "-"), model \(job.token ?? "-")")
            }
            let fixed: Set<String> = [
                core.keys.wait, core.keys.prioritized, core.keys.delayed, core.keys.active, core.keys.completed, core.keys.failed,
                core.keys.cancelled, core.keys.meta, core.keys.marker, core.keys.events, core.keys.sequence, core.keys.reaperLock,
            ]
            let records = Set(jobs.keys.map { core.keys.job($0) })
            let keys = try await queue.allKeys()
            for key in keys {
                try expect(fixed.contains(key) || records.contains(key), "a key the model does not know: \(key)")
                let ttl = try await queue.client.send(RedisCommand("PTTL", key)).int ?? -3
                try expect(ttl == -1, "\(key) has a TTL (\(ttl) ms)")
            }
            try expect(records.isSubset(of: Set(keys)), "records missing: \(records.subtracting(Set(keys)))")
        }
    }

    @Test("20,000 random steps agree with the model after every step (seeded; JOBQ_MODEL_SEED / JOBQ_MODEL_STEPS replay)")
    func randomSteps() async throws {
        let environment = ProcessInfo.processInfo.environment
        let seed = environment["JOBQ_MODEL_SEED"].flatMap { UInt64($0) } ?? 0x6A6F_6271_4D30_4445
        let steps = min(1_000_000, environment["JOBQ_MODEL_STEPS"].flatMap { Int($0) } ?? 20_000)
        let queue = try await uniqueQueue()
        try await queue.inspector.setRetention(completed: 100_000, failed: 100_000, cancelled: 100_000)
        let run = Run(queue: queue, seed: seed)
        var done = 0
        do {
            for i in 0..<steps {
                try await run.step()
                if i % 250 == 249 { try await run.fullCheck() } else if i % 5 == 4 { try await run.counts() }
                done = i + 1
            }
            try await run.fullCheck()
        } catch {
            Issue.record("seed \(seed), step \(done + 1) of \(steps): \(error)\nlast steps:\n\(run.log.joined(separator: "\n"))")
            return
        }
        print("model test: \(done) steps, seed \(seed), \(run.jobs.count) jobs at the end")
        #expect(done == steps)
    }
}
