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
}
