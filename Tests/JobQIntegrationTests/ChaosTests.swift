import Foundation
import Testing

/// The promise "never lost, ends exactly once", proven with real processes, real kills and a real
/// Redis restart by `jobq-chaos` (see its documentation for the faults and the checks).
extension ExecutableTests {
    @Suite("jobq-chaos", .awaitedTeardown)
    struct ChaosTests {
        /// The chaos run's temp files (its Redis, its logs) go under the suite's temp root, which
        /// `scripts/test` cleans up by PID after a crashed run.
        static var environment: [String: String] {
            var env = ["PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin"]
            env["JOBQ_TEST_TMPDIR"] = ProcessInfo.processInfo.environment["JOBQ_TEST_TMPDIR"]
            return env
        }

        static func field(_ name: String, in summary: String) -> Int? {
            guard let range = summary.range(of: " \(name)=") else { return nil }
            return Int(summary[range.upperBound...].prefix { $0.isNumber })
        }

        @Test(
            "CI size, with a concurrency cap and a rate on the queue: 1,200 jobs + a bulk cancel of 200, workers killed every 1–3 s, connections cut, Redis restarted, a worker frozen past its lease, Redis full for 4.5 s, a SIGTERM round with programs ignoring it, a 1-second schedule advanced by every worker throughout: none lost, the cap never exceeded, one job per tick, every check holds"
        )
        func ciSized() async throws {
            let run = try await runTool("jobq-chaos", ["run", "--limits"], environment: Self.environment, timeout: 300)
            let summary = run.output.split(separator: "\n").last { $0.hasPrefix("jobq-chaos:") }.map(String.init) ?? ""
            print(summary)
            #expect(run.code == 0, "\(run.output.suffix(4000))")
            #expect(Self.field("lost", in: summary) == 0, "\(summary)")
            #expect(Self.field("violations", in: summary) == 0, "\(summary)")
            let cap = try #require(Self.field("cap", in: summary), "\(summary)")
            #expect((Self.field("most_active", in: summary) ?? .max) <= cap, "the active set never held more than the cap: \(summary)")
            // Adds refused while Redis was full are unacknowledged (the producer saw the error).
            #expect((Self.field("jobs", in: summary) ?? 0) + (Self.field("unacked", in: summary) ?? 0) == 1_400, "\(summary)")
            #expect(Self.field("stops", in: summary) == 1 && Self.field("oom_windows", in: summary) == 1, "\(summary)")
            #expect((Self.field("kills", in: summary) ?? 0) >= 10, "\(summary)")
            #expect(Self.field("sigterms", in: summary) == 3, "\(summary)")
            #expect(Self.field("redis_restarts", in: summary) == 1, "\(summary)")
            #expect((Self.field("cuts", in: summary) ?? 0) >= 5, "\(summary)")
            // The 1-second schedule every worker advanced through all of it: one job per tick
            // (a gap no skip explains, or a tick made twice, is a violation above).
            #expect((Self.field("ticks", in: summary) ?? 0) >= 20, "\(summary)")
            // Every job ended: completed + cancelled account for all of them (none may fail).
            #expect((Self.field("completed", in: summary) ?? 0) + (Self.field("cancelled", in: summary) ?? 0) == Self.field("jobs", in: summary), "\(summary)")
        }

        @Test("--tls: the same faults with every connection over TLS (a Redis restart under TLS included): none lost, every check holds")
        func overTLS() async throws {
            let run = try await runTool("jobq-chaos", ["run", "--tls"], environment: Self.environment, timeout: 300)
            let summary = run.output.split(separator: "\n").last { $0.hasPrefix("jobq-chaos:") }.map(String.init) ?? ""
            print(summary)
            #expect(run.code == 0, "\(run.output.suffix(4000))")
            #expect(summary.contains(" tls=on"), "\(summary)")
            #expect(Self.field("lost", in: summary) == 0, "\(summary)")
            #expect(Self.field("violations", in: summary) == 0, "\(summary)")
            #expect(Self.field("redis_restarts", in: summary) == 1, "\(summary)")
            #expect((Self.field("kills", in: summary) ?? 0) >= 10 && (Self.field("cuts", in: summary) ?? 0) >= 5, "\(summary)")
        }

        @Test("the checker is not blind: a job deleted behind jobq's back is reported lost and the run exits 1")
        func checkerCatchesALostJob() async throws {
            let run = try await runTool("jobq-chaos", ["run", "--jobs", "60", "--seconds", "5", "--sabotage"], environment: Self.environment, timeout: 180)
            #expect(run.code == 1, "\(run.output.suffix(3000))")
            #expect(run.output.contains(" lost=1 "), "\(run.output.suffix(3000))")
            #expect(run.output.contains("violation: job ") && run.output.contains("lost"), "\(run.output.suffix(3000))")
            // A run with violations keeps its logs for the post-mortem; this one is ours to remove.
            if let line = run.output.split(separator: "\n").last(where: { $0.hasPrefix("logs kept in ") }) {
                try? FileManager.default.removeItem(atPath: String(line.dropFirst("logs kept in ".count)))
            }
        }
    }
}
