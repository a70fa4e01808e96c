import Foundation
import Testing

@testable import JobQ
@testable import JobQRedis

@Suite("Job ids, queue names, options and backoff")
struct JobModelTests {
    @Test("generated ids are 26-character ULIDs, strictly increasing in one process")
    func ids() {
        var previous = ""
        for _ in 0..<10_000 {
            let id = JobID.generate()
            #expect(id.utf8.count == 26)
            #expect(JobID.isGenerated(id))
            #expect(id > previous)
            previous = id
        }
        let now = UInt64(Date().timeIntervalSince1970 * 1000)
        let ts = JobID.timestamp(of: JobID.generate()) ?? 0
        #expect(ts <= now + 1000 && ts + 60_000 >= now)
    }

    @Test("custom ids: 1–200 bytes, no control characters, never the generated format")
    func customIDs() {
        #expect(throws: Never.self) { try JobID.validate(custom: "order-42", queue: "q") }
        #expect(throws: Never.self) { try JobID.validate(custom: "with {braces} and ünïcode", queue: "q") }
        for bad in ["", String(repeating: "x", count: 201), "a\nb", JobID.generate()] {
            #expect { try JobID.validate(custom: bad, queue: "q") } throws: { ($0 as? JobQError)?.code == .invalidJobID }
        }
    }

    @Test("queue names: 1–100 bytes, no braces or control characters; keys share one hash tag")
    func queueNames() throws {
        let keys = try QueueKeys(queue: "emails")
        #expect(keys.wait == "jobq:{emails}:wait")
        #expect(keys.job("abc") == "jobq:{emails}:job:abc")
        #expect(keys.cancelChannel == "jobq:{emails}:cancel")
        for bad in ["", String(repeating: "q", count: 101), "a{b", "a}b", "tab\there"] {
            #expect { _ = try QueueKeys(queue: bad) } throws: { ($0 as? JobQError)?.code == .invalidQueueName }
        }
        #expect(throws: Never.self) { _ = try QueueKeys(queue: "reports-and-webhooks:eu") }
    }

    @Test("backoff: fixed, linear, exponential with cap and jitter (`docs/job-lifecycle.md`)")
    func backoff() {
        let e = Backoff.exponential(base: .seconds(1), max: .seconds(10), jitter: 0.2)
        #expect(e.delayMs(afterAttempt: 1, random: 0) == 1000)
        #expect(e.delayMs(afterAttempt: 2, random: 0) == 2000)
        #expect(e.delayMs(afterAttempt: 3, random: 0) == 4000)
        #expect(e.delayMs(afterAttempt: 5, random: 0) == 10_000)
        #expect(e.delayMs(afterAttempt: 5, random: 1) == 12_000)
        #expect(e.delayMs(afterAttempt: 100, random: 0) == 10_000)
        #expect(Backoff.linear(base: .milliseconds(500), jitter: 0).delayMs(afterAttempt: 3) == 1500)
        #expect(Backoff.fixed(.seconds(2)).delayMs(afterAttempt: 7) == 2000)
        #expect(Backoff(encoded: e.encoded) == e)
        #expect(Backoff(parsing: "exponential:1s") == Backoff.exponential(base: .seconds(1)))
        #expect(Backoff(parsing: "linear:250ms:max=5s")?.cap == .seconds(5))
        #expect(Backoff(parsing: "sometimes:1s") == nil)
    }

    @Test("options are range-checked and stored without defaults")
    func options() {
        #expect(JobOptions().storedFields.isEmpty)
        let o = JobOptions(priority: .high, attempts: 5, timeout: .seconds(30), removeOnComplete: true)
        let fields = Dictionary(uniqueKeysWithValues: o.storedFields)
        #expect(fields == ["p": "10", "a": "5", "to": "30000", "rc": "1"])
        let back = JobOptions(fields: fields.mapValues { Array($0.utf8) }, id: JobID.generate())
        #expect(back == o)
        for bad in [
            JobOptions(priority: 1001), JobOptions(attempts: 0), JobOptions(timeout: .zero),
            JobOptions(delay: .seconds(1), runAt: Date()),
        ] {
            #expect { try bad.validate(queue: "q") } throws: { ($0 as? JobQError)?.code == .invalidOptions }
        }
        #expect(Duration(parsing: "250ms") == .milliseconds(250))
        #expect(Duration(parsing: "2m") == .seconds(120))
        #expect(Duration(parsing: "1.5h") == .seconds(5400))
        #expect(Duration(parsing: "soon") == nil)
    }
}
