import Foundation
import Histogram
import JobQ

/// Scenario `enqueue`: single adds against `redis-benchmark` running our own
/// add script by EVALSHA, `addBulk` against the same at `-P 100`, Redis commands and CPU per add
/// next to BullMQ's, and Redis memory per waiting job.
struct EnqueueScenario {
    let client: RedisClient
    let reference: RedisBenchmarkTool
    let runs: Int
    let quick: Bool

    /// `{"p":"0123456789ab"}`: a 20-byte JSON payload.
    static let payload = JobPayload.json(#"{"p":"0123456789ab"}"#)

    func run() async throws -> ScenarioReport {
        let singles = quick ? 2_000 : 10_000
        let bulk = quick ? 20_000 : 100_000
        var report = ScenarioReport("enqueue")
        var latency = Histogram<UInt64>.micros()

        func evalsha(_ queue: String) async throws -> [String] { try await Self.addScriptCommand(client: client, queue: queue) }

        // 1. Single adds: latency p50/p99 vs the script alone at -c 1.
        var ourP50: [Double] = []
        var ourP99: [Double] = []
        var refP50: [Double] = []
        var refP99: [Double] = []
        var ourRate: [Double] = []
        var refRate: [Double] = []
        var cpuPerAdd: [Double] = []
        var callsPerAdd: [Double] = []
        var breakdown: [String: Int] = [:]
        for run in 0..<runs {
            let refQueue = "bench-ref-\(run)"
            let ref = try await reference.run(clients: 1, pipeline: 1, requests: singles, command: try await evalsha(refQueue), randomKeyspace: 1_000_000_000)
            try await drop(refQueue)
            refP50.append(ref.p50Ms * 1000)
            refP99.append(ref.p99Ms * 1000)
            refRate.append(ref.rps)

            let queue = try JobQueue(name: "bench-add-\(run)", client: client)
            _ = try await queue.add(name: "warmup", payload: Self.payload)
            var histogram = Histogram<UInt64>.micros()
            let before = try await ServerStats.fetch(client)
            let start = ContinuousClock.now
            for _ in 0..<singles {
                let t0 = ContinuousClock.now
                _ = try await queue.add(name: "bench", payload: Self.payload)
                histogram.record(since: t0)
            }
            latency.add(histogram)
            report.jobs += 2 * singles
            let elapsed = (ContinuousClock.now - start).seconds
            let after = try await ServerStats.fetch(client)
            ourRate.append(Double(singles) / elapsed)
            ourP50.append(Double(histogram.valueAtPercentile(50)))
            ourP99.append(Double(histogram.valueAtPercentile(99)))
            cpuPerAdd.append((after.cpuSeconds - before.cpuSeconds) * 1e6 / Double(singles))
            let calls = ServerStats.callsBetween(before, after)
            callsPerAdd.append(Double(calls.values.reduce(0, +)) / Double(singles))
            breakdown = calls
            try await drop(queue.name)
        }
        let p50Ratio = median(ourP50) / median(refP50)
        let p99Ratio = median(ourP99) / median(refP99)
        report.add(
            Figure(
                "single add, p50 latency", ourP50, unit: "µs", reference: "`redis-benchmark -c 1` EVALSHA addJob-9", referenceValues: refP50,
                target: "≤ 2×", met: p50Ratio <= 2))
        report.add(Figure("single add, p99 latency", ourP99, unit: "µs", reference: "same", referenceValues: refP99, target: "≤ 3×", met: p99Ratio <= 3))
        report.add(
            Figure("single adds, one awaited at a time (\(singles.formatted()) per run)", ourRate, unit: "adds/s", reference: "same", referenceValues: refRate))
        report.latency("single add (\(singles.formatted()) per run)", latency)
        var sidekiqSingles: [SidekiqReference.Measure] = []
        var sidekiqNote: String?
        for run in 0..<runs {
            do {
                sidekiqSingles.append(
                    try await SidekiqReference(configuration: client.configuration).measureAdds(singles / 2, queue: "bench-sidekiq-\(run)", bulk: false))
                report.jobs += singles / 2
            } catch {
                sidekiqNote = "Sidekiq reference skipped: \(error)"
                break
            }
        }
        if let sidekiqNote { report.note(sidekiqNote) }
        if !sidekiqSingles.isEmpty {
            let sidekiqP50 = sidekiqSingles.map(\.p50Micros)
            report.add(
                Figure(
                    "single add, p50 latency, against Sidekiq", ourP50, unit: "µs",
                    reference: "Sidekiq \(sidekiqSingles[0].version) `Sidekiq::Client.push` (what `perform_async` does), Ruby", referenceValues: sidekiqP50,
                    target: "≤ 1.0×", met: median(ourP50) <= median(sidekiqP50)))
            report.note(
                "Sidekiq single push: \(f2(median(sidekiqSingles.map(\.callsPerJob)))) Redis commands and \(f2(median(sidekiqSingles.map(\.cpuMicrosPerJob)))) µs of Redis CPU per job (jobq: \(f2(median(callsPerAdd))) and \(f2(median(cpuPerAdd))) µs)"
            )
        }

        // 2. addBulk vs the script pipelined 100 deep.
        var bulkRate: [Double] = []
        var bulkRef: [Double] = []
        var bulkScriptRef: [Double] = []
        var bulkSidekiq: [SidekiqReference.Measure] = []
        var bulkSidekiqNote: String?
        var memoryPerJob: [Double] = []
        var bulkCPU: [Double] = []
        for run in 0..<runs {
            let refQueue = "bench-ref-bulk-\(run)"
            let ref = try await reference.run(clients: 1, pipeline: 100, requests: bulk, command: try await evalsha(refQueue), randomKeyspace: 1_000_000_000)
            try await drop(refQueue)
            bulkRef.append(ref.rps)
            let scriptRefQueue = "bench-ref-bulk-jobs-\(run)"
            let scriptRef = try await reference.run(
                clients: 1, pipeline: 100, requests: bulk / 100, command: try await Self.addJobsScriptCommand(client: client, queue: scriptRefQueue, jobs: 100),
                randomKeyspace: 1_000_000_000)
            try await drop(scriptRefQueue)
            bulkScriptRef.append(scriptRef.rps * 100)
            if bulkSidekiqNote == nil {
                do {
                    bulkSidekiq.append(
                        try await SidekiqReference(configuration: client.configuration).measureAdds(bulk, queue: "bench-sidekiq-bulk-\(run)", bulk: true))
                    report.jobs += bulk
                } catch {
                    bulkSidekiqNote = "Sidekiq bulk reference skipped: \(error)"
                }
            }

            let queue = try JobQueue(name: "bench-bulk-\(run)", client: client)
            _ = try await queue.add(name: "warmup", payload: Self.payload)
            let jobs = (0..<bulk).map { _ in JobQueue.NewJob(name: "bench", payload: Self.payload) }
            let before = try await ServerStats.fetch(client)
            let start = ContinuousClock.now
            let results = try await queue.addBulk(jobs)
            report.jobs += 2 * bulk
            let elapsed = (ContinuousClock.now - start).seconds
            let after = try await ServerStats.fetch(client)
            guard results.allSatisfy({ (try? $0.get().created) == true }) else { throw BenchError("addBulk refused jobs") }
            bulkRate.append(Double(bulk) / elapsed)
            memoryPerJob.append(Double(after.usedMemory - before.usedMemory) / Double(bulk))
            bulkCPU.append((after.cpuSeconds - before.cpuSeconds) * 1e6 / Double(bulk))
            try await drop(queue.name)
        }
        let bulkRatio = median(bulkRate) / median(bulkRef)
        report.add(
            Figure(
                "addBulk of \(bulk.formatted())", bulkRate, unit: "jobs/s", reference: "`redis-benchmark -c 1 -P 100` EVALSHA addJob-9",
                referenceValues: bulkRef,
                target: "≥ 0.6×", met: bulkRatio >= 0.6))
        report.add(
            Figure(
                "addBulk of \(bulk.formatted()), against the bulk script", bulkRate, unit: "jobs/s",
                reference: "`redis-benchmark -c 1 -P 100` EVALSHA addJobs-9, 100 jobs per call", referenceValues: bulkScriptRef,
                target: "≥ 0.8×", met: median(bulkRate) >= 0.8 * median(bulkScriptRef)))
        if let bulkSidekiqNote { report.note(bulkSidekiqNote) }
        if !bulkSidekiq.isEmpty {
            let rates = bulkSidekiq.map(\.rate)
            report.add(
                Figure(
                    "addBulk of \(bulk.formatted()), against Sidekiq", bulkRate, unit: "jobs/s",
                    reference: "Sidekiq \(bulkSidekiq[0].version) `push_bulk`, 1,000 per call, Ruby", referenceValues: rates, target: "≥ 1.0×",
                    met: median(bulkRate) >= median(rates)))
            report.note(
                "Sidekiq push_bulk: \(f2(median(bulkSidekiq.map(\.cpuMicrosPerJob)))) µs of Redis CPU and \(String(format: "%.3f", median(bulkSidekiq.map(\.callsPerJob)))) commands per job (one LPUSH of 1,000 and one SADD per call: no per-job record, event or dedup); jobq addBulk: \(f2(median(bulkCPU))) µs"
            )
        }

        // 3. Redis work per add, next to BullMQ's.
        let calls = median(callsPerAdd)
        let inScript = Double(breakdown.filter { $0.key != "evalsha" && $0.key != "sadd" }.values.reduce(0, +)) / Double(singles)
        report.add(
            Figure(
                "Redis commands per add, inside the script (\(f2(calls)) with the EVALSHA and the queue registration)", [inScript], unit: "", target: "≤ 6",
                met: inScript <= 6.01))
        report.note(
            "commands per add: "
                + breakdown.sorted { $0.value > $1.value }.map { "\($0.key) \(f2(Double($0.value) / Double(singles)))" }.joined(separator: ", "))
        // Sequential adds pay the request's own I/O on both sides; pipelined adds (addBulk on both
        // sides) show what the scripts themselves cost.
        for (label, ours, bulkMode) in [("one at a time", cpuPerAdd, false), ("pipelined (addBulk)", bulkCPU, true)] {
            var bull: [BullMQReference.Measure] = []
            var bullNote = ""
            for run in 0..<runs {
                do {
                    report.jobs += bulkMode ? (quick ? 10_000 : 20_000) : (quick ? 2_000 : 5_000)
                    bull.append(
                        try await BullMQReference(configuration: client.configuration).measureAdds(
                            bulkMode ? (quick ? 10_000 : 20_000) : (quick ? 2_000 : 5_000), queue: "bench-bullmq-\(run)", bulk: bulkMode))
                } catch {
                    bullNote = "BullMQ reference skipped: \(error)"
                    break
                }
            }
            if bull.isEmpty {
                report.add(Figure("Redis CPU per add, \(label)", ours, unit: "µs", reference: "BullMQ (bullmq from PyPI): skipped", target: "≤ 0.5×"))
                report.note(bullNote)
                continue
            }
            let bullCPU = median(bull.map(\.cpuMicrosPerJob))
            let ratio = median(ours) / bullCPU
            report.add(
                Figure(
                    "Redis CPU per add, \(label)", ours, unit: "µs",
                    reference: "BullMQ `\(bulkMode ? "Queue.addBulk" : "Queue.add")` → addStandardJob (bullmq \(BullMQReference.version()), Python)",
                    referenceValues: bull.map(\.cpuMicrosPerJob), target: "≤ 0.5×", met: ratio <= 0.5))
            let last = bull.last!
            let bullCalls = last.calls.sorted { $0.value > $1.value }.map { "\($0.key) \(f2(Double($0.value) / Double(last.n)))" }.joined(separator: ", ")
            report.note(
                "BullMQ \(label): \(f2(median(bull.map(\.callsPerJob)))) Redis commands per add (\(bullCalls)); \(Int(median(bull.map(\.rate)))) adds/s from Python"
            )
        }

        // 4. Memory per waiting job.
        let memory = median(memoryPerJob)
        report.add(
            Figure(
                "Redis memory per waiting job (20-byte payload), `INFO memory` delta / \(bulk.formatted())", memoryPerJob, unit: "B", target: "≤ 400 B",
                met: memory <= 400))
        return report
    }

    /// `redis-benchmark` arguments that call the add script by EVALSHA for a new random id each
    /// time (the layout in addJob-9.lua's header: KEYS job, wait, prioritized, delayed, marker,
    /// events, seq, meta, group prefix; ARGV id, delay, runAt, priority, events cap, then the record's fields).
    static func addScriptCommand(client: RedisClient, queue: String) async throws -> [String] {
        let probe = try JobQueue(name: queue, client: client)
        guard let sha = try await probe.preloadScripts()["addJob-9"] else { throw BenchError("addJob-9 did not load") }
        let k = try QueueKeys(queue: queue)
        return [
            "EVALSHA", sha, "9", k.jobPrefix + "__rand_int__", k.wait, k.prioritized, k.delayed, k.marker, k.events, k.sequence, k.meta,
            k.groupPrefix,
            "__rand_int__", "0", "0", "0", "10000", JobField.name.rawValue, "bench", JobField.payload.rawValue, payload.text,
        ]
    }

    /// `redis-benchmark` arguments that call the bulk add script by EVALSHA with `jobs` jobs of
    /// new random ids (addJobs-9.lua's header: KEYS job prefix, wait, prioritized, delayed,
    /// marker, events, seq, meta, group prefix; ARGV events cap, count, then per job id, delay,
    /// runAt, priority, field count, fields).
    static func addJobsScriptCommand(client: RedisClient, queue: String, jobs: Int) async throws -> [String] {
        let probe = try JobQueue(name: queue, client: client)
        guard let sha = try await probe.preloadScripts()["addJobs-9"] else { throw BenchError("addJobs-9 did not load") }
        let k = try QueueKeys(queue: queue)
        var command = [
            "EVALSHA", sha, "9", k.jobPrefix, k.wait, k.prioritized, k.delayed, k.marker, k.events, k.sequence, k.meta, k.groupPrefix, "10000",
            String(jobs),
        ]
        for _ in 0..<jobs {
            command += ["__rand_int__", "0", "0", "0", "2", JobField.name.rawValue, "bench", JobField.payload.rawValue, payload.text]
        }
        return command
    }

    private func drop(_ queue: String) async throws {
        let inspector = try QueueInspector(name: queue, client: client)
        _ = try await inspector.obliterate(force: true)
    }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
