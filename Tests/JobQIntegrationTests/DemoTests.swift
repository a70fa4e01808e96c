import Foundation
import Testing

/// The README's first command runs this binary; here it runs as built, end to end.
extension ExecutableTests {
    @Suite("jobq-demo", .awaitedTeardown)
    struct DemoTests {
        @Test("jobq-demo --jobs 20 (default seed): a private Redis, 4 worker processes, 20 jobs finished, a retry, one cancel, exit 0")
        func endToEnd() async throws {
            // No JOBQ_REDIS_URL: the demo starts (and stops) a redis-server of its own.
            let run = try await runTool("jobq-demo", ["--jobs", "20"], environment: ["PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin"])
            #expect(run.code == 0, "\(run.output.suffix(3000))")
            let text = run.output
            func number(after label: String) -> Int? {
                guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("  " + label) }) else { return nil }
                return Int(line.dropFirst(2 + label.count).trimmingCharacters(in: .whitespaces).prefix { $0.isNumber })
            }
            #expect(number(after: "jobs created") == 20)
            #expect(number(after: "jobs finished") == 20)
            #expect((number(after: "retries") ?? 0) >= 1)
            #expect(number(after: "cancelled") == 1)
            #expect(text.contains("started a private redis-server") && text.contains("stopped the private redis-server"))
            #expect(text.contains("workers stopped  ok, ok, ok, ok"))
            #expect(text.contains("demo: cancelling") && text.contains("at 50%"))
            #expect(text.contains("retrying in"))
            #expect(text.contains("── status:"))
        }
    }
}
