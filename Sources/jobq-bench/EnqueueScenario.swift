import Foundation
import Histogram
import JobQ

/// Scenario `enqueue` (issue 3's targets): single adds against `redis-benchmark` running our own
/// add script by EVALSHA, `addBulk` against the same at `-P 100`, Redis commands and CPU per add
/// next to BullMQ's, and Redis memory per waiting job.
struct EnqueueScenario {
    let client: RedisClient
    let reference: RedisBenchmarkTool
    let runs: Int
    let quick: Bool

    struct Report {
        var rows: [String] = []
        var notes: [String] = []
    }

    /// `{"p":"0123456789ab"}`: a 20-byte JSON payload.
    static let payload = JobPayload.json(#"{"p":"0123456789ab"}"#)

    func run() async throws -> Report {
        let singles = quick ? 2_000 : 10_000
        let bulk = quick ? 20_000 : 100_000
        var report = Report()

        // The add script's SHA and its arguments for redis-benchmark (the layout in addJob-7.lua's
        // header: KEYS job, wait, prioritized, delayed, marker, events, seq; ARGV id, delay, runAt, priority,
        // events cap, then the record's fields).
        let probe = try JobQueue(name: "bench-probe", client: client)
        let shas = try await probe.preloadScripts()
        guard let sha = shas["addJob-7"] else { throw BenchError("addJob-7 did not load") }
        func evalsha(_ queue: String) throws -> [String] {
            let k = try QueueKeys(queue: queue)
            return ["EVALSHA", sha, "7", k.jobPrefix + "__rand_int__", k.wait, k.prioritized, k.delayed, k.marker, k.events, k.sequence,
                    "__rand_int__", "0", "0", "0", "10000", "n", "bench", "d", Self.payload.text]
        }

        // 1. Single adds: latency p50/p99 vs the script alone at -c 1.
        var ourP50: [Double] = [], ourP99: [Double] = [], refP50: [Double] = [], refP99: [Double] = []
        var ourRate: [Double] = [], refRate: [Double] = []
        var cpuPerAdd: [Double] = [], callsPerAdd: [Double] = []
        var breakdown: [String: Int] = [:]
        for run in 0..<runs {
            let refQueue = "bench-ref-\(run)"
            let ref = try await reference.run(clients: 1, pipeline: 1, requests: singles, command: try evalsha(refQueue), randomKeyspace: 1_000_000_000)
            try await drop(refQueue)
            refP50.append(ref.p50Ms * 1000); refP99.append(ref.p99Ms * 1000); refRate.append(ref.rps)

            let queue = try JobQueue(name: "bench-add-\(run)", client: client)
            _ = try await queue.add(name: "warmup", payload: Self.payload)
            var histogram = Histogram<UInt64>(numberOfSignificantValueDigits: .three)
            let before = try await ServerStats.fetch(client)
            let start = ContinuousClock.now
            for _ in 0..<singles {
                let t0 = ContinuousClock.now
                _ = try await queue.add(name: "bench", payload: Self.payload)
                _ = histogram.record(UInt64(max(1, (ContinuousClock.now - t0).nanoseconds / 1000)))
            }
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
        report.rows.append("| single add, p50 latency | \(us(ourP50)) | `redis-benchmark -c 1 EVALSHA addJob-7` | \(us(refP50)) | \(f2(p50Ratio))× | ≤ 2× | \(p50Ratio <= 2 ? "met" : "MISSED") |")
        report.rows.append("| single add, p99 latency | \(us(ourP99)) | same | \(us(refP99)) | \(f2(p99Ratio))× | ≤ 3× | \(p99Ratio <= 3 ? "met" : "MISSED") |")
        report.notes.append("single add: \(Row.spread(ourRate)) adds/s vs the bare script's \(Row.spread(refRate)) calls/s (\(singles) per run)")

        // 2. addBulk vs the script pipelined 100 deep.
        var bulkRate: [Double] = [], bulkRef: [Double] = []
        var memoryPerJob: [Double] = []
        var bulkCPU: [Double] = []
        for run in 0..<runs {
            let refQueue = "bench-ref-bulk-\(run)"
            let ref = try await reference.run(clients: 1, pipeline: 100, requests: bulk, command: try evalsha(refQueue), randomKeyspace: 1_000_000_000)
            try await drop(refQueue)
            bulkRef.append(ref.rps)

            let queue = try JobQueue(name: "bench-bulk-\(run)", client: client)
            _ = try await queue.add(name: "warmup", payload: Self.payload)
            let jobs = (0..<bulk).map { _ in JobQueue.NewJob(name: "bench", payload: Self.payload) }
            let before = try await ServerStats.fetch(client)
            let start = ContinuousClock.now
            let results = try await queue.addBulk(jobs)
            let elapsed = (ContinuousClock.now - start).seconds
            let after = try await ServerStats.fetch(client)
            guard results.allSatisfy({ (try? $0.get().created) == true }) else { throw BenchError("addBulk refused jobs") }
            bulkRate.append(Double(bulk) / elapsed)
            memoryPerJob.append(Double(after.usedMemory - before.usedMemory) / Double(bulk))
            bulkCPU.append((after.cpuSeconds - before.cpuSeconds) * 1e6 / Double(bulk))
            try await drop(queue.name)
        }
        let bulkRatio = median(bulkRate) / median(bulkRef)
        report.rows.append("| addBulk of \(bulk), jobs/s | \(Row.spread(bulkRate)) | `redis-benchmark -c 1 -P 100 EVALSHA addJob-7` | \(Row.spread(bulkRef)) | \(f2(bulkRatio)) | ≥ 0.60 | \(bulkRatio >= 0.6 ? "met" : "MISSED") |")

        // 3. Redis work per add, next to BullMQ's.
        let calls = median(callsPerAdd)
        let inScript = Double(breakdown.filter { $0.key != "evalsha" && $0.key != "sadd" }.values.reduce(0, +)) / Double(singles)
        report.rows.append("| Redis commands per add | \(f2(calls)) (\(f2(inScript)) inside the script) | — | — | — | ≤ 6 | \(inScript <= 6.01 ? "met" : "MISSED") |")
        report.notes.append("commands per add: " + breakdown.sorted { $0.value > $1.value }.map { "\($0.key) \(f2(Double($0.value) / Double(singles)))" }.joined(separator: ", "))
        // Sequential adds pay the request's own I/O on both sides; pipelined adds (addBulk on both
        // sides) show what the scripts themselves cost.
        for (label, ours, bulkMode) in [("one at a time", cpuPerAdd, false), ("pipelined (addBulk)", bulkCPU, true)] {
            var bull: [BullMQReference.Measure] = []
            var bullNote = ""
            for run in 0..<runs {
                do {
                    bull.append(try await BullMQReference(configuration: client.configuration).measureAdds(bulkMode ? (quick ? 10_000 : 20_000) : (quick ? 2_000 : 5_000), queue: "bench-bullmq-\(run)", bulk: bulkMode))
                } catch {
                    bullNote = "BullMQ reference skipped: \(error)"
                    break
                }
            }
            if bull.isEmpty {
                report.rows.append("| Redis CPU per add, \(label) | \(f1(median(ours))) µs | BullMQ (bullmq from PyPI) | skipped | — | ≤ 0.5× | not measured |")
                report.notes.append(bullNote)
                continue
            }
            let bullCPU = median(bull.map(\.cpuMicrosPerJob))
            let ratio = median(ours) / bullCPU
            report.rows.append("| Redis CPU per add, \(label) | \(f1(median(ours))) µs (\(f1(ours.min() ?? 0))–\(f1(ours.max() ?? 0))) | BullMQ `\(bulkMode ? "Queue.addBulk" : "Queue.add")` → addStandardJob (bullmq \(bullVersion()), Python) | \(f1(bullCPU)) µs (\(f1(bull.map(\.cpuMicrosPerJob).min() ?? 0))–\(f1(bull.map(\.cpuMicrosPerJob).max() ?? 0))) | \(f2(ratio))× | ≤ 0.5× | \(ratio <= 0.5 ? "met" : "MISSED") |")
            let last = bull.last!
            let bullCalls = last.calls.sorted { $0.value > $1.value }.map { "\($0.key) \(f2(Double($0.value) / Double(last.n)))" }.joined(separator: ", ")
            report.notes.append("BullMQ \(label): \(f2(median(bull.map(\.callsPerJob)))) Redis commands per add (\(bullCalls)); \(Int(median(bull.map(\.rate)))) adds/s from Python")
        }

        // 4. Memory per waiting job.
        let memory = median(memoryPerJob)
        report.rows.append("| Redis memory per waiting job (20-byte payload) | \(Int(memory)) B (\(Int(memoryPerJob.min() ?? 0))–\(Int(memoryPerJob.max() ?? 0))) | `INFO memory` delta / \(bulk) | — | — | ≤ 400 B | \(memory <= 400 ? "met" : "MISSED") |")
        return report
    }

    private func drop(_ queue: String) async throws {
        let inspector = try QueueInspector(name: queue, client: client)
        _ = try await inspector.obliterate(force: true)
    }

    private func bullVersion() -> String {
        let home = FileManager.default.homeDirectoryForCurrentUser.path
        let dir = "\(home)/.cache/jobq-bench/bullmq-venv/lib"
        for python in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] {
            let site = "\(dir)/\(python)/site-packages"
            for entry in (try? FileManager.default.contentsOfDirectory(atPath: site)) ?? [] where entry.hasPrefix("bullmq-") && entry.hasSuffix(".dist-info") {
                return String(entry.dropFirst(7).dropLast(10))
            }
        }
        return "?"
    }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

func us(_ values: [Double]) -> String {
    "\(Int(median(values))) µs (\(Int(values.min() ?? 0))–\(Int(values.max() ?? 0)))"
}
func f1(_ v: Double) -> String { String(format: "%.1f", v) }
func f2(_ v: Double) -> String { String(format: "%.2f", v) }
