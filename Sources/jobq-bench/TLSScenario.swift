import Foundation
import Histogram
import JobQ
import LocalRedis

/// Scenario `tls`: what TLS costs, as same-run ratios against plain TCP on one server that listens
/// on both (a TLS port and a plain port, certificates made for the run with the `openssl` CLI).
/// Drain at concurrency 32 and single-add latency, alternating plain and TLS in every run.
struct TLSScenario {
    let reference: RedisBenchmarkTool
    let runs: Int
    let quick: Bool

    func run() async throws -> ScenarioReport {
        var report = ScenarioReport("tls")
        let root = ProcessInfo.processInfo.environment["JOBQ_TEST_TMPDIR"] ?? NSTemporaryDirectory()
        let pki = try await TestCertificates.make(in: root + "/jobq-bench-tls-\(getpid())")
        defer { try? FileManager.default.removeItem(atPath: pki.directory) }
        let plainPort = try RedisServerProcess.freeLoopbackPort()
        var options = RedisServerProcess.Options()
        options.tls = .init(certificates: pki)
        options.extraArguments = ["--port", String(plainPort)]
        let server = try await RedisServerProcess.start(options)
        defer { Task { await server.destroy() } }
        var plainConfiguration = server.configuration
        plainConfiguration.endpoint = .tcp(host: "127.0.0.1", port: plainPort)
        plainConfiguration.tls = nil
        let plain = RedisClient(configuration: plainConfiguration)
        let secure = RedisClient(configuration: server.configuration)
        defer {
            Task {
                await plain.close()
                await secure.close()
            }
        }
        let n = quick ? 20_000 : 100_000
        let adds = quick ? 2_000 : 10_000
        var drainPlain: [Double] = []
        var drainTLS: [Double] = []
        var addPlain: [Double] = []
        var addTLS: [Double] = []
        var plainLatency = Histogram<UInt64>.micros()
        var tlsLatency = Histogram<UInt64>.micros()
        for run in 0..<runs {
            drainPlain.append(
                try await DrainScenario(client: plain, reference: reference, runs: 1, quick: quick).drainOnce(n: n, concurrency: 32, run: run).rate)
            drainTLS.append(
                try await DrainScenario(client: secure, reference: reference, runs: 1, quick: quick).drainOnce(n: n, concurrency: 32, run: run).rate)
            addPlain.append(try await addLatency(plain, count: adds, run: run, into: &plainLatency))
            addTLS.append(try await addLatency(secure, count: adds, run: run, into: &tlsLatency))
            report.jobs += 2 * (n + adds)
        }
        let drainRatio = median(drainTLS) / median(drainPlain)
        report.add(
            Figure(
                "drain \(n.formatted()) no-op jobs over TLS, concurrency 32", drainTLS, unit: "jobs/s", reference: "the same over plain TCP, same server",
                referenceValues: drainPlain, target: "≥ 0.8×", met: drainRatio >= 0.8))
        let addRatio = median(addTLS) / median(addPlain)
        report.add(
            Figure(
                "single add p50 over TLS, 1 caller", addTLS, unit: "µs", reference: "the same over plain TCP, same server", referenceValues: addPlain,
                target: "≤ 1.3×", met: addRatio <= 1.3))
        report.latency("add over plain TCP, 1 caller", plainLatency)
        report.latency("add over TLS, 1 caller", tlsLatency)
        let session = try await secure.tlsSession()
        report.note(
            "TLS: \(session.map { "\($0.version), \($0.cipher)" } ?? "?"), EC P-256 certificates, server verified; one redis-server with a TLS port and a plain port."
        )
        return report
    }

    /// Sequential awaited adds of a small job; returns the p50 in µs and records every sample.
    private func addLatency(_ client: RedisClient, count: Int, run: Int, into histogram: inout Histogram<UInt64>) async throws -> Double {
        let queue = try JobQueue(name: "bench-tls-add-\(run)-\(UUID().uuidString.prefix(6))", client: client)
        _ = try await queue.preloadScripts()
        var own = Histogram<UInt64>.micros()
        for i in 0..<count {
            let t0 = ContinuousClock.now
            _ = try await queue.add(name: "noop", payload: .json(#"{"i":\#(i)}"#))
            own.record(since: t0)
            histogram.record(since: t0)
        }
        _ = try await queue.inspector.obliterate(force: true)
        return Double(own.valueAtPercentile(50))
    }
}
