import Foundation
import Histogram
import JobQ
import Logging

/// One measured figure of a scenario: jobq's value in each run, and (when it has one) the
/// reference measured in the same runs, the ratio of the medians and the target it is held to.
struct Figure: Encodable {
    var name: String
    var unit: String
    var values: [Double]
    var reference: String?
    var referenceValues: [Double]?
    var ratio: Double?
    var target: String?
    var met: Bool?

    /// `ratio` defaults to median(values) / median(referenceValues) when both are given.
    init(
        _ name: String, _ values: [Double], unit: String, reference: String? = nil, referenceValues: [Double]? = nil,
        ratio: Double? = nil, target: String? = nil, met: Bool? = nil
    ) {
        self.name = name
        self.unit = unit
        self.values = values
        self.reference = reference
        self.referenceValues = referenceValues
        if let ratio {
            self.ratio = ratio
        } else if let referenceValues, !referenceValues.isEmpty, JobQBenchSupport.median(referenceValues) != 0 {
            self.ratio = JobQBenchSupport.median(values) / JobQBenchSupport.median(referenceValues)
        }
        self.target = target
        self.met = met
    }

    var median: Double { JobQBenchSupport.median(values) }

    enum CodingKeys: String, CodingKey { case name, unit, values, median, reference, referenceValues, referenceMedian, ratio, target, met }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(unit, forKey: .unit)
        try c.encode(values, forKey: .values)
        try c.encode(median, forKey: .median)
        try c.encodeIfPresent(reference, forKey: .reference)
        try c.encodeIfPresent(referenceValues, forKey: .referenceValues)
        try c.encodeIfPresent(referenceValues.map { JobQBenchSupport.median($0) }, forKey: .referenceMedian)
        try c.encodeIfPresent(ratio, forKey: .ratio)
        try c.encodeIfPresent(target, forKey: .target)
        try c.encodeIfPresent(met, forKey: .met)
    }

    /// "median (min–max) unit", with a precision that suits the size of the numbers.
    static func spread(_ values: [Double], unit: String) -> String {
        guard !values.isEmpty else { return "—" }
        let m = JobQBenchSupport.median(values)
        let lo = values.min() ?? 0
        let hi = values.max() ?? 0
        let text = values.count == 1 ? format(m) : "\(format(m)) (\(format(lo))–\(format(hi)))"
        return unit.isEmpty ? text : "\(text) \(unit)"
    }

    static func format(_ v: Double) -> String {
        let a = abs(v)
        if a >= 1000 { return Int(v.rounded()).formatted() }
        if a >= 100 { return String(format: "%.0f", v) }
        if a >= 10 { return String(format: "%.1f", v) }
        return String(format: "%.2f", v)
    }
}

/// Latency percentiles of one measurement, every run's samples merged in one HdrHistogram.
struct LatencyFigure: Encodable {
    var name: String
    var unit: String
    var count: UInt64
    var p50: Double
    var p90: Double
    var p99: Double
    var p999: Double
    var max: Double

    init(_ name: String, _ histogram: Histogram<UInt64>, unit: String = "µs") {
        self.name = name
        self.unit = unit
        count = histogram.totalCount
        p50 = Double(histogram.valueAtPercentile(50))
        p90 = Double(histogram.valueAtPercentile(90))
        p99 = Double(histogram.valueAtPercentile(99))
        p999 = Double(histogram.valueAtPercentile(99.9))
        max = Double(histogram.max)
    }
}

/// Redis's own cost over a whole scenario: `INFO cpu` and `INFO commandstats` deltas over the
/// jobs the scenario handled (setup such as pre-adding and cleaning up included).
struct RedisCost: Encodable {
    var jobs: Int
    var cpuMicrosPerJob: Double
    var callsPerJob: Double
}

/// What one scenario measured.
struct ScenarioReport: Encodable {
    var scenario: String
    var seconds = 0.0
    var figures: [Figure] = []
    var latencies: [LatencyFigure] = []
    var notes: [String] = []
    /// Jobs the scenario added, took or finished, for the whole-scenario Redis cost.
    var jobs = 0
    var redisCost: RedisCost?

    init(_ scenario: String) { self.scenario = scenario }

    mutating func add(_ figure: Figure) { figures.append(figure) }
    mutating func latency(_ name: String, _ histogram: Histogram<UInt64>, unit: String = "µs") {
        latencies.append(LatencyFigure(name, histogram, unit: unit))
    }
    mutating func note(_ text: String) { notes.append(text) }

    var markdown: String {
        var lines: [String] = []
        if !figures.isEmpty {
            lines.append("| figure | measured (median, min–max) | reference | reference (median, min–max) | ratio | target | |")
            lines.append("|---|---|---|---|---|---|---|")
            for f in figures {
                let status = f.met.map { $0 ? "met" : "**missed**" } ?? ""
                lines.append(
                    "| \(f.name) | \(Figure.spread(f.values, unit: f.unit)) | \(f.reference ?? "—") | \(f.referenceValues.map { Figure.spread($0, unit: f.unit) } ?? "—") | \(f.ratio.map { Figure.format($0) + "×" } ?? "—") | \(f.target ?? "—") | \(status) |"
                )
            }
        }
        if !latencies.isEmpty {
            if !lines.isEmpty { lines.append("") }
            lines.append("| latency (all runs merged) | samples | p50 | p90 | p99 | p99.9 | max |")
            lines.append("|---|---|---|---|---|---|---|")
            for l in latencies {
                func v(_ x: Double) -> String { "\(Figure.format(x)) \(l.unit)" }
                lines.append("| \(l.name) | \(l.count) | \(v(l.p50)) | \(v(l.p90)) | \(v(l.p99)) | \(v(l.p999)) | \(v(l.max)) |")
            }
        }
        if let cost = redisCost {
            if !lines.isEmpty { lines.append("") }
            lines.append(
                "Redis over the whole scenario (setup included): \(Figure.format(cost.cpuMicrosPerJob)) µs CPU and \(Figure.format(cost.callsPerJob)) commands per job, \(cost.jobs.formatted()) jobs."
            )
        }
        if !notes.isEmpty {
            if !lines.isEmpty { lines.append("") }
            lines += notes.map { "- \($0)" }
        }
        return lines.joined(separator: "\n")
    }
}

/// Helpers shared by the scenarios (a namespace so `Figure.median` can reach the free function).
enum JobQBenchSupport {
    static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        guard !sorted.isEmpty else { return 0 }
        return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
    }
}

func median(_ values: [Double]) -> Double { JobQBenchSupport.median(values) }

/// A histogram of durations in µs (at least 1).
extension Histogram<UInt64> {
    static func micros() -> Histogram<UInt64> { Histogram<UInt64>(numberOfSignificantValueDigits: .three) }
    mutating func record(since start: ContinuousClock.Instant) {
        _ = record(UInt64(Swift.max(1, (ContinuousClock.now - start).nanoseconds / 1000)))
    }
}

/// A worker in the bench process with connections of its own (as a separate worker process would
/// have), logging errors only.
struct BenchWorker {
    let worker: Worker
    let client: RedisClient
    let running: Task<Void, any Error>

    init(server: RedisConfiguration, configuration: WorkerConfiguration, handlers: JobHandlers) throws {
        var logger = Logger(label: "bench")
        logger.logLevel = .error
        client = RedisClient(configuration: server)
        let worker = try Worker(client: client, configuration: configuration, handlers: handlers, logger: logger)
        self.worker = worker
        running = Task { try await worker.run() }
    }

    /// Graceful stop; waits for it and closes the connections.
    func stop() async throws {
        worker.shutdown()
        try await running.value
        await client.close()
    }

    /// The `jobq-worker` built next to this binary, or nil with a note in the report.
    static func binary(for scenario: String, report: inout ScenarioReport) -> String? {
        let path = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent().appendingPathComponent("jobq-worker")
            .path
        guard FileManager.default.isExecutableFile(atPath: path) else {
            report.note("\(scenario) skipped: \(path) is missing (swift build -c release --product jobq-worker)")
            return nil
        }
        return path
    }
}
