import Foundation
import JobQ
import LocalRedis
import Synchronization
import Testing

/// Flow limits across several `jobq-worker` processes, set with `jobq-admin limits` — nested in
/// the serialized `Executables` suite (it spawns processes).
extension ExecutableTests {
    @Suite("Flow control across jobq-worker processes", .awaitedTeardown)
    struct FlowControlCLI {
        /// A queue of its own on the shared server, and a client for it.
        static func setUp(_ label: String) async throws -> (RedisServerProcess, RedisClient, JobQueue) {
            let server = try await SharedRedis.instance.server()
            let client = RedisClient(configuration: server.configuration)
            onTeardown { await client.close() }
            return (server, client, try JobQueue(name: "\(label)-\(UUID().uuidString.prefix(8))", client: client))
        }

        /// Samples `ZCARD active` from outside until `stop` is set (bounded: 100,000 samples);
        /// answers the largest.
        static func sampleActive(_ client: RedisClient, _ queue: JobQueue, until stop: StopFlag) async -> Int {
            var most = 0
            for _ in 0..<100_000 where !stop.isSet {
                if let n = try? await client.send(RedisCommand("ZCARD", "jobq:{\(queue.name)}:active")).int { most = max(most, n) }
                try? await Task.sleep(for: .milliseconds(5))
            }
            return most
        }

        @Test(
            "3 worker processes × concurrency 8 against a cap of 3 set by jobq-admin limits: start and stop times logged outside Redis never overlap more than 3 and reach 3; the active set sampled from outside stays ≤ 3"
        )
        func concurrencyCap() async throws {
            let (server, client, queue) = try await Self.setUp("cap")
            let set = try await runAdmin(["limits", queue.name, "--concurrency", "3", "--redis-url", server.url])
            #expect(set.code == 0 && set.out.contains("concurrency") && set.out.contains("3"), "\(set.out) \(set.err)")
            let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("cap-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
            onTeardown { try? FileManager.default.removeItem(at: scratch) }
            let log = scratch.appendingPathComponent("runs.log").path
            let script = scratch.appendingPathComponent("run.sh").path
            try "#!/bin/sh\necho \"start $(date +%s%N)\" >> \(log)\nsleep 0.1\necho \"stop $(date +%s%N)\" >> \(log)\n"
                .write(toFile: script, atomically: true, encoding: .utf8)
            chmod(script, 0o755)
            let workers = try (0..<3).map { i in
                try WorkerProcess([
                    "--redis-url", server.url, "--queue", queue.name, "--handler", "j=exec:\(script)", "--concurrency", "8", "--worker-id", "cap-\(i)",
                ])
            }
            for w in workers { try await w.waitForLog("worker started") }
            let stop = StopFlag()
            let sampler = Task { await Self.sampleActive(client, queue, until: stop) }
            _ = try await queue.addBulk((0..<45).map { _ in JobQueue.NewJob(name: "j", payload: .json("{}")) })
            try await queue.expectEvents(.completed, count: 45, within: 90)
            stop.set()
            let sampled = await sampler.value
            #expect(sampled <= 3 && sampled >= 1, "the active set never held more than the cap: \(sampled)")
            // Start/stop lines, by time; at equal times a stop comes first (it happened before).
            let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
            let events = lines.compactMap { line -> (Int, Int)? in
                let parts = line.split(separator: " ")
                guard parts.count == 2, let t = Int(parts[1]) else { return nil }
                return (t, parts[0] == "start" ? 1 : -1)
            }.sorted { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }
            #expect(events.count == 90, "every run logged its start and stop")
            var running = 0
            var most = 0
            for (_, step) in events {
                running += step
                most = max(most, running)
            }
            #expect(most <= 3, "never more than 3 handlers at once across the 3 processes: \(most)")
            #expect(most == 3, "the cap is reached")
            for w in workers { w.process.signal(SIGTERM) }
            for w in workers { #expect(try await w.exitCode() == 0, "\(w.log.suffix(1000))") }
        }

        @Test("a kill -9'd worker's slots come back when the reaper recovers its jobs, not before; a queueFull add exits 1 with one line")
        func slotsReturnAtReap() async throws {
            let (server, client, queue) = try await Self.setUp("reap")
            try await queue.inspector.setLimits(concurrency: .set(2))
            let args = ["--redis-url", server.url, "--queue", queue.name, "--handler", "slow=demo", "--lease", "1s", "--concurrency", "4"]
            let first = try WorkerProcess(args + ["--worker-id", "doomed"])
            try await first.waitForLog("worker started")
            let held = try await queue.addBulk(
                (0..<2).map { _ in JobQueue.NewJob(name: "slow", payload: .json(#"{"sleep_ms": 60000}"#), options: .init(maxStalls: 0)) })
            try await eventually(20, "the doomed worker holds both slots") { try await queue.inspector.counts().active == 2 }
            first.process.signal(SIGKILL)
            _ = try await first.exitCode()
            let rest = try await queue.addBulk((0..<4).map { _ in JobQueue.NewJob(name: "slow", payload: .json(#"{"sleep_ms": 10}"#)) })
            let stop = StopFlag()
            let sampler = Task { await Self.sampleActive(client, queue, until: stop) }
            let second = try WorkerProcess(args + ["--worker-id", "survivor"])
            try await second.waitForLog("worker started")
            for r in held + rest { _ = try r.get() }
            try await queue.expectEvents(.completed, count: 4, within: 60)
            stop.set()
            #expect(await sampler.value <= 2, "never more than the cap, dead leases included")
            // The survivor started nothing before the dead worker's leases were recovered.
            var sawStall = false
            var startedBeforeReap = 0
            for try await element in queue.events(from: .beginning) {
                guard case .event(let event) = element else { continue }
                // maxStalls 0: the reaper fails them (no hour-long rerun on the survivor).
                if event.kind == .stalled || event.failure?.reason == "stalled" { sawStall = true }
                if event.kind == .active, event.workerID == "survivor", !sawStall { startedBeforeReap += 1 }
                if event.kind == .completed { break }
            }
            #expect(sawStall && startedBeforeReap == 0, "slots come back at reap time")
            // Backpressure from the command line.
            _ = try await queue.inspector.setLimits(maxWaiting: .set(1))
            try await queue.inspector.pause()
            let accepted = try await runAdmin(["add", queue.name, "slow", "--data", "{}", "--redis-url", server.url])
            let refused = try await runAdmin(["add", queue.name, "slow", "--data", "{}", "--redis-url", server.url])
            #expect(accepted.code == 0, "\(accepted.err)")
            #expect(refused.code == 1 && refused.err.split(separator: "\n").count == 1 && refused.err.contains("queueFull"), "\(refused.err)")
            second.process.signal(SIGTERM)
            #expect(try await second.exitCode() == 0, "\(second.log.suffix(1000))")
        }

        @Test("jobq-admin limits: sets, shows (text and JSON), removes one with off and all with --clear; bad values exit 2 and change nothing")
        func limitsCommand() async throws {
            let (server, _, queue) = try await Self.setUp("lim")
            let url = ["--redis-url", server.url]
            let set = try await runAdmin(["limits", queue.name, "--rate", "10/1s", "--concurrency", "2", "--max-waiting", "5"] + url)
            #expect(set.code == 0 && set.out.contains("10/1s") && set.out.contains("max waiting"), "\(set.out) \(set.err)")
            let shown = try await runAdmin(["limits", queue.name, "--json"] + url)
            let limits = try #require(jsonObject(shown.out)?["limits"] as? [String: Any], "\(shown.out)")
            #expect(limits["rate"] as? String == "10/1s" && limits["concurrency"] as? Int == 2 && limits["maxWaiting"] as? Int == 5, "\(limits)")
            for bad in [["--rate", "fast"], ["--rate", "0/1s"], ["--concurrency", "0"], ["--max-waiting", "-3"], ["--rate", "10/0s"]] {
                let refused = try await runAdmin(["limits", queue.name] + bad + url)
                #expect(refused.code == 2 && refused.err.split(separator: "\n").count <= 3, "\(bad): \(refused.code) \(refused.err)")
            }
            let off = try await runAdmin(["limits", queue.name, "--concurrency", "off", "--json"] + url)
            let afterOff = try #require(jsonObject(off.out)?["limits"] as? [String: Any])
            #expect(afterOff["concurrency"] is NSNull && afterOff["rate"] as? String == "10/1s", "only the cap went: \(afterOff)")
            let counts = try await runAdmin(["counts", queue.name] + url)
            #expect(counts.out.contains("limits: rate 10/1s"), "\(counts.out)")
            let cleared = try await runAdmin(["limits", queue.name, "--clear", "--json"] + url)
            let none = try #require(jsonObject(cleared.out)?["limits"] as? [String: Any])
            #expect(none["rate"] is NSNull && none["maxWaiting"] is NSNull, "\(none)")
        }

        @Test(
            "groups from the command line: add --group, group defaults and overrides, pause --group, groups, list --group; a jobq-worker runs the other groups meanwhile"
        )
        func groupsCommands() async throws {
            let (server, _, queue) = try await Self.setUp("grp")
            let url = ["--redis-url", server.url]
            let defaults = try await runAdmin(["limits", queue.name, "--group-concurrency", "2", "--group-rate", "100/1s"] + url)
            #expect(
                defaults.code == 0 && defaults.out.contains("group concurrency") && defaults.out.contains("100/1s per group"), "\(defaults.out) \(defaults.err)"
            )
            for i in 0..<3 {
                let added = try await runAdmin(["add", queue.name, "e", "--id", "t1-\(i)", "--group", "tenant-1"] + url)
                #expect(added.code == 0, "\(added.err)")
            }
            _ = try await runAdmin(["add", queue.name, "e", "--id", "t2-0", "--group", "tenant-2"] + url)
            let own = try await runAdmin(["limits", queue.name, "--group", "tenant-1", "--concurrency", "5", "--json"] + url)
            let ownShape = try #require(jsonObject(own.out), "\(own.out) \(own.err)")
            #expect(ownShape["concurrency"] as? Int == 5 && ownShape["ownLimits"] as? Bool == true && ownShape["rate"] as? String == "100/1s")
            let paused = try await runAdmin(["pause", queue.name, "--group", "tenant-1"] + url)
            #expect(paused.code == 0 && paused.out.contains("group tenant-1") && paused.out.contains("paused"), "\(paused.out)")
            let listed = try await runAdmin(["list", queue.name, "--state", "waiting", "--group", "tenant-1", "--json"] + url)
            #expect(jsonArray(listed.out)?.compactMap { $0["id"] as? String } == ["t1-0", "t1-1", "t1-2"], "\(listed.out)")
            let worker = try WorkerProcess(["--queue", queue.name, "--handler", "e=echo", "--lease", "2s"] + url)
            try await queue.expectEvents(.completed, job: "t2-0", within: 30)
            let table = try await runAdmin(["groups", queue.name] + url)
            #expect(table.code == 0 && table.out.contains("GROUP") && table.out.contains("tenant-1") && table.out.contains("paused"), "\(table.out)")
            let counts = try await runAdmin(["counts", queue.name] + url)
            #expect(counts.out.contains("groups: 1 (0 ready, 1 held by their limits, 3 jobs in them)"), "\(counts.out)")
            let watched = try await runAdmin(["watch", queue.name, "--iterations", "1", "--interval", "100ms"] + url)
            #expect(watched.out.contains("LIMITED (group)"), "every waiting job is in a held group: \(watched.out)")
            let resumed = try await runAdmin(["resume", queue.name, "--group", "tenant-1"] + url)
            #expect(resumed.code == 0 && resumed.out.contains("resumed"), "\(resumed.out)")
            try await queue.expectEvents(.completed, count: 4, within: 30)
            let json = try await runAdmin(["groups", queue.name, "--json"] + url)
            let rows = try #require(jsonArray(json.out), "\(json.out)")
            #expect(rows.first { $0["group"] as? String == "tenant-1" }?["waiting"] as? Int == 0, "\(rows)")
            let wrong = try await runAdmin(["limits", queue.name, "--group", "tenant-1", "--max-waiting", "5"] + url)
            #expect(wrong.code == 2 && wrong.err.contains("--max-waiting"), "\(wrong.err)")
            let bad = try await runAdmin(["add", queue.name, "e", "--group", "bad\u{7}group"] + url)
            #expect(bad.code != 0 && bad.err.split(separator: "\n").count == 1 && !bad.err.contains("\u{7}"), "\(bad.code) \(bad.err)")
            worker.process.signal(SIGTERM)
            #expect(try await worker.exitCode() == 0, "\(worker.log)")
        }

        @Test("jobq-admin workers pause, concurrency and resume reach a jobq-worker process; workers shows its state; an unknown id exits 4")
        func workerControl() async throws {
            let (server, _, queue) = try await Self.setUp("ctl")
            let worker = try WorkerProcess(["--redis-url", server.url, "--queue", queue.name, "--handler", "e=echo", "--worker-id", "ctl-1", "--lease", "1s"])
            try await worker.waitForLog("worker started")
            @Sendable func listed() async throws -> [String: Any]? {
                let list = try await runAdmin(["workers", "--json", "--redis-url", server.url])
                return jsonArray(list.out)?.first { $0["id"] as? String == "ctl-1" }
            }
            try await eventually(20, "the worker is listed") { try await listed() != nil }
            let paused = try await runAdmin(["workers", "pause", "ctl-1", "--redis-url", server.url])
            #expect(paused.code == 0 && paused.out.contains("now"), "\(paused.out) \(paused.err)")
            try await eventually(20, "listed as paused") { try await listed()?["state"] as? String == "paused" }
            try await worker.waitForLog("an operator paused this worker")
            let resized = try await runAdmin(["workers", "concurrency", "ctl-1", "3", "--json", "--redis-url", server.url])
            #expect(resized.code == 0 && jsonObject(resized.out)?["concurrency"] as? Int == 3, "\(resized.out) \(resized.err)")
            try await eventually(20, "listed with 3 slots") { try await listed()?["concurrency"] as? Int == 3 }
            _ = try await queue.add(name: "e", payload: .json("{}"))
            let resumed = try await runAdmin(["workers", "resume", "ctl-1", "--redis-url", server.url])
            #expect(resumed.code == 0, "\(resumed.err)")
            try await queue.expectEvents(.completed, within: 20)
            try await eventually(20, "listed as running again") { try await listed()?["state"] as? String == "running" }
            let table = try await runAdmin(["workers", "--redis-url", server.url])
            #expect(table.code == 0 && table.out.contains("STATE") && table.out.contains("running"), "\(table.out)")
            let unknown = try await runAdmin(["workers", "pause", "no-such-worker", "--redis-url", server.url])
            #expect(unknown.code == 4 && unknown.err.contains("no live worker"), "\(unknown.err)")
            let bad = try await runAdmin(["workers", "concurrency", "ctl-1", "0", "--redis-url", server.url])
            #expect(bad.code == 2, "\(bad.err)")
            worker.process.signal(SIGTERM)
            #expect(try await worker.exitCode() == 0, "\(worker.log.suffix(1000))")
        }

        @Test("a rate of 50/1s over 20 s across 3 worker processes: every 1 s window holds at most 50 starts, and at least 90% of the rate is used")
        func rateAcrossProcesses() async throws {
            let (server, _, queue) = try await Self.setUp("rate")
            try await queue.inspector.setRetention(completed: 5000)
            let set = try await runAdmin(["limits", queue.name, "--rate", "50/1s", "--json", "--redis-url", server.url])
            #expect(set.code == 0, "\(set.err)")
            #expect((jsonObject(set.out)?["limits"] as? [String: Any])?["rate"] as? String == "50/1s", "\(set.out)")
            _ = try await queue.addBulk((0..<1100).map { _ in JobQueue.NewJob(name: "e", payload: .json("{}")) })
            let workers = try (0..<3).map { i in
                try WorkerProcess(["--redis-url", server.url, "--queue", queue.name, "--handler", "e=echo", "--concurrency", "8", "--worker-id", "rate-\(i)"])
            }
            for w in workers { try await w.waitForLog("worker started") }
            try await queue.expectEvents(.completed, count: 1050, within: 90)
            for w in workers { w.process.signal(SIGTERM) }
            for w in workers { #expect(try await w.exitCode() == 0, "\(w.log.suffix(1000))") }
            let jobs = try await queue.inspector.jobs(state: .completed, limit: 5000)
            let starts = jobs.compactMap(\.startedAt).map { Int(($0.timeIntervalSince1970 * 1000).rounded()) }.sorted()
            #expect(starts.count >= 1050)
            var worst = 0
            var low = 0
            for (i, t) in starts.enumerated() {
                while starts[low] <= t - 1000 { low += 1 }
                worst = max(worst, i - low + 1)
            }
            #expect(worst <= 50, "the busiest 1 s window held \(worst) starts")
            let first = starts[0]
            let inTwenty = starts.filter { $0 < first + 20_000 }.count
            #expect(inTwenty >= 900, "\(inTwenty) starts in the first 20 s of a 50/s limit (at least 90% of 1000)")
        }
    }
}

/// A flag one task sets and another reads.
final class StopFlag: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .relaxed) }
    var isSet: Bool { value.load(ordering: .relaxed) }
}
