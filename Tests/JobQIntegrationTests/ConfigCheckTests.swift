import Foundation
import JobQ
import Testing

extension ExecutableTests {
    /// `jobq-worker --check-config` on files and environments a hurried operator writes.
    @Suite("jobq-worker configuration: types, unknown keys, aliases, handler specs", .awaitedTeardown)
    struct ConfigCheckTests {
        static func check(_ yaml: String?, flags: [String] = [], environment: [String: String] = [:]) async throws -> ProgramRun {
            let temp = FileManager.default.temporaryDirectory.appendingPathComponent("jobq-cfgcheck-\(UUID().uuidString).yaml").path
            defer { try? FileManager.default.removeItem(atPath: temp) }
            var args = flags + ["--check-config"]
            if let yaml {
                try yaml.write(toFile: temp, atomically: true, encoding: .utf8)
                args = ["--config", temp] + args
            }
            return try await runTool("jobq-worker", args, environment: environment, timeout: 30)
        }

        static let minimal = "worker:\n  queues: [q]\nhandlers: [\"a=noop\"]\n"

        @Test(
            "wrong types, unknown keys and typos exit 78 naming the key (with a suggestion); nothing falls back to a default",
            arguments: [
                ("redis:\n  url: [redis://prod:6379]\n" + minimal, "redis.url", "a string"),
                ("worker:\n  queues: [q]\n  concurrency: [1, 2]\nhandlers: [\"a=noop\"]\n", "worker.concurrency", "an integer"),
                ("worker:\n  queues: [q]\n  concurency: 4\nhandlers: [\"a=noop\"]\n", "worker.concurency", "did you mean worker.concurrency?"),
                ("worker:\n  queues: [q]\n  requireDurable: maybe\nhandlers: [\"a=noop\"]\n", "worker.requireDurable", "true or false"),
                (minimal + "metrics:\n  port: nine\n", "metrics.port", "an integer"),
                (minimal + "logging:\n  level: info\n", "logging", "no such key"),
                ("worker:\n  queues: q\nhandlers: [\"a=noop\"]\n", "worker.queues", "a list of strings"),
                ("worker:\n  queues: [q, {x: 1}]\nhandlers: [\"a=noop\"]\n", "worker.queues", "a list of strings"),
            ])
        func types(yaml: String, key: String, expected: String) async throws {
            let run = try await Self.check(yaml)
            #expect(run.code == 78, "\(run.output)")
            #expect(run.output.contains(key) && run.output.contains(expected), "\(run.output)")
            #expect(run.output.split(separator: "\n").count == 1, "one line: \(run.output)")
        }

        @Test(
            "schedules: in the file: a bad cron, zone, key, policy or queue exits 78 naming the schedule's key; JOBQ_SCHEDULES is no variable",
            arguments: [
                ("  - {id: s, cron: '0 25 * * *', job: a}\n", "schedules.s", "field 2 (hour)"),
                ("  - {id: s, cron: '0 2 * * *', timeZone: Mars/Base, job: a}\n", "schedules.s", "time zone"),
                ("  - {id: s, every: 5m, job: a, overlap: sometimes}\n", "schedules.s.overlap", "skipIfRunning"),
                ("  - {id: s, every: 5m, job: a, misfre: skip}\n", "schedules[0].misfre", "did you mean misfire?"),
                ("  - {id: s, every: 5m, job: a, queue: other}\n", "schedules.s.queue", "one of this worker's queues"),
                ("  - {id: s, every: 5m, cron: '* * * * *', job: a}\n", "schedules.s", "one of them"),
                ("  - {id: s, every: 5m}\n", "schedules.s.job", "job name"),
                ("  - {id: s, every: 5m, job: a, options: {attempts: many}}\n", "schedules.s.options.attempts", "an integer"),
                ("  - {id: s, every: 5m, job: a}\n  - {id: s, every: 1m, job: a}\n", "schedules.s.id", "one entry per id"),
            ])
        func schedules(entries: String, key: String, expected: String) async throws {
            let run = try await Self.check(Self.minimal + "schedules:\n" + entries)
            #expect(run.code == 78, "\(run.output)")
            #expect(run.output.contains(key) && run.output.contains(expected), "\(run.output)")
            #expect(run.output.split(separator: "\n").count == 1, "one line: \(run.output)")
            let good = try await Self.check(Self.minimal + "schedules:\n  - {id: s, every: 5m, job: a, data: {x: [1, 2]}}\n")
            #expect(good.code == 0 && good.output.contains("q/s (every 5m)"), "\(good.output)")
            let env = try await Self.check(Self.minimal, environment: ["JOBQ_SCHEDULES": "x"])
            #expect(env.code == 78 && env.output.contains("JOBQ_SCHEDULES"), "\(env.output)")
        }

        @Test("the documented file and a minimal one pass; an empty value means unset")
        func valid() async throws {
            let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            let documented = try String(contentsOf: root.appendingPathComponent("config/jobq.yaml"), encoding: .utf8)
            #expect(try await Self.check(documented).code == 0)
            let run = try await Self.check(Self.minimal + "metrics:\n  port:\n")
            #expect(run.code == 0, "\(run.output)")
        }

        @Test("unknown JOBQ_* variables exit 78 naming them; JOBQ_JOB_* and the job's own names are ignored")
        func environment() async throws {
            let typo = try await Self.check(Self.minimal, environment: ["JOBQ_WORKER_CONCURENCY": "4"])
            #expect(
                typo.code == 78 && typo.output.contains("JOBQ_WORKER_CONCURENCY") && typo.output.contains("did you mean JOBQ_WORKER_CONCURRENCY?"),
                "\(typo.output)")
            let unknown = try await Self.check(Self.minimal, environment: ["JOBQ_FROBNICATE": "secret-value-123"])
            #expect(unknown.code == 78 && unknown.output.contains("JOBQ_FROBNICATE") && !unknown.output.contains("secret-value-123"), "\(unknown.output)")
            let fine = try await Self.check(Self.minimal, environment: ["JOBQ_JOB_ID": "x", "JOBQ_ATTEMPT": "2", "JOBQ_WORKER_CONCURRENCY": "4"])
            #expect(fine.code == 0, "\(fine.output)")
            let badValue = try await Self.check(Self.minimal, environment: ["JOBQ_WORKER_CONCURRENCY": "[1,2]"])
            #expect(badValue.code == 78 && badValue.output.contains("worker.concurrency"), "\(badValue.output)")
        }

        @Test("a YAML alias bomb is refused at once, not expanded")
        func aliasBomb() async throws {
            var yaml = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
            for i in 1...9 { yaml += "a\(i): &a\(i) [" + Array(repeating: "*a\(i - 1)", count: 10).joined(separator: ", ") + "]\n" }
            yaml += Self.minimal
            #expect(yaml.utf8.count < 1000)
            let bomb = yaml
            let run = try await within(20, "--check-config on an alias bomb") { try await Self.check(bomb) }
            #expect(run.code == 78, "\(run.output)")
            let bombInSection =
                "worker:\n  queues: &q [" + Array(repeating: "q", count: 10).joined(separator: ", ")
                + "]\n  id: x\nhandlers: [\"a=noop\"]\nmetrics: {port: 1, address: *q}\n"
            #expect(try await Self.check(bombInSection).code == 78)
        }

        @Test("handler specs that can never work exit 78: exec of a directory or a missing file, an http port out of range, two handlers for one name")
        func handlerSpecs() async throws {
            for (spec, fragment) in [
                ("a=exec:/tmp", "not a directory"), ("a=exec:/nonexistent/program", "does not exist"),
                ("a=http:http://127.0.0.1:99999/hook", "1…65535"), ("a=exec:relative/path", "absolute"),
            ] {
                let run = try await Self.check(nil, flags: ["--queue", "q", "--handler", spec])
                #expect(run.code == 78 && run.output.contains(fragment), "\(spec): \(run.output)")
            }
            let twice = try await Self.check(nil, flags: ["--queue", "q", "--handler", "a=noop", "--handler", "a=echo"])
            #expect(twice.code == 78 && twice.output.contains("one handler per job name"), "\(twice.output)")
        }

        @Test("--version on both binaries; help with an unknown command exits 2; a worker id with a newline is refused; a:5:1 serves queue a:5")
        func smallerEdges() async throws {
            for binary in ["jobq-admin", "jobq-worker"] {
                let run = try await runTool(binary, ["--version"])
                #expect(run.code == 0 && run.output.contains(JobQVersion.current), "\(binary): \(run.output)")
            }
            let help = try await runTool("jobq-admin", ["help", "bogus"])
            #expect(help.code == 2 && help.output.contains("no command \"bogus\""), "\(help.output)")
            #expect(try await runTool("jobq-admin", ["help", "list"]).code == 0)
            let newline = try await Self.check(nil, flags: ["--queue", "q", "--handler", "a=noop", "--worker-id", "w1\nforged log line"])
            #expect(newline.code == 78 && newline.output.contains("workerID"), "\(newline.output)")
            let colon = try await Self.check(nil, flags: ["--queue", "a:5:1", "--queue", "b:3", "--handler", "a=noop"])
            #expect(colon.code == 0 && colon.output.contains("a:5:1, b:3"), "\(colon.output)")
        }
    }
}
