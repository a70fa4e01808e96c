import Foundation
import JobQ
import Logging
import ServiceLifecycle
import Testing

/// The README's quick start, compiled and run (`docs/testing.md`): if this stops building, the README
/// is wrong. Only the URL differs (the suite's own server).
@Suite("README quick start", .awaitedTeardown)
struct ReadmeQuickStartTests {
    struct SendEmail: JobParameters {
        static let jobName = "send-email"
        var to: String
    }

    @Test("the producer quick start runs as written")
    func quickStart() async throws {
        let client = try await SharedRedis.client()
        onTeardown { await client.close() }
        let emails = try JobQueue(name: "emails-readme-\(UUID().uuidString.prefix(8))", client: client)

        let added = try await emails.add(
            SendEmail(to: "a@example.com"),
            options: JobOptions(attempts: 5, backoff: .exponential(base: .seconds(2))))
        let again = try await emails.add(SendEmail(to: "a@example.com"), options: JobOptions(jobID: "welcome-42"))
        try await emails.add(SendEmail(to: "b@example.com"), options: JobOptions(delay: .seconds(30), priority: .high))
        let results = try await emails.addBulk((0..<1000).map { try JobQueue.NewJob(SendEmail(to: "user\($0)@example.com")) })
        let outcome = try await emails.cancel(added.id)
        #expect(outcome == .cancelled)
        #expect(results.count == 1000 && again.created)
        #expect(try await emails.add(SendEmail(to: "x"), options: JobOptions(jobID: "welcome-42")).created == false)
        // The README waits for an outcome; here the job is cancelled first so the wait ends.
        _ = try await emails.cancel(again.id)
        let final = try await emails.result(of: again.id, timeout: .seconds(30))
        #expect(final == .cancelled(reason: "cancelled"))
        var seen = 0
        for try await element in emails.events(from: .beginning) {
            if case .event = element { seen += 1 }
            if seen == 3 { break }
        }
        #expect(seen == 3)
        let job = try #require(try await emails.inspector.job(added.id))
        #expect(try job.decode(SendEmail.self).to == "a@example.com")
    }

    struct Mailer: Sendable {
        func send(to: String) async throws {}
    }

    @Test("the worker quick start runs as written, and stops on a graceful shutdown")
    func workerQuickStart() async throws {
        let client = try await SharedRedis.client()
        onTeardown { await client.close() }
        let name = "emails-readme-\(UUID().uuidString.prefix(8))"
        let mailer = Mailer()
        let logger = Logger(label: "readme")
        var handlers = JobHandlers()
        handlers.register(SendEmail.self) { email, context in
            context.progress(percent: 10, message: "rendering")
            try await mailer.send(to: email.to)
        }
        let worker = try Worker(
            client: client,
            configuration: WorkerConfiguration(
                queues: [.init(name, weight: 3), .init(name + "-reports")],
                concurrency: 16),
            handlers: handlers)
        let group = ServiceGroup(services: [worker], gracefulShutdownSignals: [], logger: logger)
        let running = Task { try await group.run() }
        let queue = try JobQueue(name: name, client: client)
        let added = try await queue.add(SendEmail(to: "a@example.com"))
        #expect(try await queue.result(of: added.id, timeout: .seconds(30)) == .completed(result: []))
        await group.triggerGracefulShutdown()
        try await running.value
    }

    /// A fenced block of the README's section `heading`, by language.
    static func readmeBlock(_ heading: String, _ language: String) throws -> String {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let readme = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
        let section = try #require(readme.range(of: "## " + heading + "\n"))
        let rest = readme[section.upperBound...]
        let end = rest.range(of: "\n## ")?.lowerBound ?? rest.endIndex
        let open = try #require(rest[..<end].range(of: "```" + language + "\n"))
        let close = try #require(rest[open.upperBound..<end].range(of: "\n```"))
        return String(rest[open.upperBound..<close.lowerBound])
    }

    @Test("the recurring jobs example compiles and runs as the README shows it; its YAML passes jobq-worker --check-config")
    func recurringJobs() async throws {
        let client = try await SharedRedis.client()
        onTeardown { await client.close() }
        let reports = try JobQueue(name: "reports-readme-\(UUID().uuidString.prefix(8))", client: client)

        try await reports.upsertSchedule(
            id: "nightly-report", .cron("0 2 * * *", timeZone: "Europe/Berlin"),
            job: .init(name: "report", payload: .json(#"{"kind":"daily"}"#), options: .init(attempts: 5)),
            options: .init(misfire: .fireOnce, overlap: .skipIfRunning))
        try await reports.upsertSchedule(id: "sync", .every(.minutes(5)), job: .init(name: "sync", payload: .json("{}")))
        for schedule in try await reports.schedules() {
            print(schedule.id, schedule.spec, schedule.upcoming(3), schedule.lastRun?.state as Any)
        }

        #expect(try await reports.schedules().map(\.id) == ["nightly-report", "sync"])
        // The README's block is this test's code, line for line.
        let source = try String(contentsOf: URL(fileURLWithPath: #filePath), encoding: .utf8)
        for line in try Self.readmeBlock("Recurring jobs", "swift").split(separator: "\n") {
            #expect(source.contains(line.trimmingCharacters(in: .whitespaces)), "README line not in the test: \(line)")
        }
        // The YAML, as a worker's whole file.
        let yaml = try Self.readmeBlock("Recurring jobs", "yaml")
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("readme-schedules-\(UUID().uuidString).yaml").path
        try ("worker:\n  queues: [reports]\nhandlers:\n  - \"report=echo\"\n" + yaml + "\n").write(toFile: file, atomically: true, encoding: .utf8)
        onTeardown { try? FileManager.default.removeItem(atPath: file) }
        let checked = try await runTool("jobq-worker", ["--check-config", "--config", file])
        #expect(checked.code == 0, "\(checked.output)")
        #expect(checked.output.contains("reports/nightly-report (cron 0 2 * * * (Europe/Berlin))"), "\(checked.output)")
    }
}
