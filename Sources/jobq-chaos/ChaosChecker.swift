import Foundation
import JobQ

/// Checks a finished chaos run against the logs written outside Redis:
/// - every acknowledged add ended in exactly one terminal state (none lost, none stuck);
/// - every completed job ran, and its stored result is the last run's (a run that lost its lease
///   never overwrote a later outcome);
/// - every run after the first either follows a planned failure or is explained by a fault of
///   ours that hit the run before it (kill -9 or SIGTERM of its worker, a connection cut, the
///   Redis restart): those are the duplicates, counted;
/// - no handler started after its job's `cancel()` returned (other than the run that was
///   already active when it returned), and a cancelled-while-waiting job never ran again;
/// - attempts count real failures only: a completed job used 1 attempt (2 for a job that fails
///   once on purpose), however often it stalled or was requeued;
/// - Redis holds no key for the queue outside its layout, and no job key has a TTL.
struct ChaosChecker {
    let directory: String
    let queue: String
    let client: RedisClient
    let faults: [ChaosRun.Fault]

    struct Report {
        var acknowledged = 0
        var unacknowledged = 0
        var completed = 0
        var failed = 0
        var cancelled = 0
        var executions = 0
        var lost = 0
        var duplicates = 0
        var violations: [String] = []
    }

    struct Execution {
        var job: String
        var attempt: Int
        var id: String
        var pid: Int32
        var start: UInt64
        var end: (outcome: String, at: UInt64)?
    }

    mutating func check() async throws -> Report {
        var report = Report()
        let files = try FileManager.default.contentsOfDirectory(atPath: directory)

        // What the producers saw.
        var kinds: [String: String] = [:]
        var cancels: [String: (outcome: String, at: UInt64, wallMs: UInt64)] = [:]
        for file in files where file.hasPrefix("producer-") {
            for f in try Self.lines(of: "\(directory)/\(file)") {
                switch f[0] {
                case "added" where f.count >= 3: kinds[f[1]] = f[2]
                case "unacked": report.unacknowledged += 1
                case "cancel" where f.count >= 5: cancels[f[1]] = (f[2], UInt64(f[3]) ?? 0, UInt64(f[4]) ?? 0)
                case "cancelGaveUp": report.violations.append("cancel of \(f.count > 1 ? f[1] : "?") never returned within its deadline")
                default: break
                }
            }
        }
        report.acknowledged = kinds.count

        // What the handlers did.
        var runs: [String: Execution] = [:]
        for file in files where file.hasPrefix("worker-") {
            for f in try Self.lines(of: "\(directory)/\(file)") {
                if f[0] == "start", f.count >= 6 {
                    runs[f[3]] = Execution(job: f[1], attempt: Int(f[2]) ?? 0, id: f[3], pid: Int32(f[4]) ?? 0, start: UInt64(f[5]) ?? 0)
                } else if f[0] == "end", f.count >= 6 {
                    runs[f[3]]?.end = (f[4], UInt64(f[5]) ?? 0)
                }
            }
        }
        report.executions = runs.count
        let byJob = Dictionary(grouping: runs.values, by: \.job).mapValues { $0.sorted { $0.start < $1.start } }

        // Where Redis says each job is.
        let keys = try QueueKeys(queue: queue)
        var membership: [String: [String]] = [:]
        for (state, key) in [
            ("waiting", keys.wait), ("prioritized", keys.prioritized), ("delayed", keys.delayed), ("active", keys.active),
            ("completed", keys.completed), ("failed", keys.failed), ("cancelled", keys.cancelled),
        ] {
            let type = try await client.send("TYPE", key).string ?? "none"
            let reply: RedisReply
            switch type {
            case "list": reply = try await client.send("LRANGE", key, "0", "-1")
            case "zset": reply = try await client.send("ZRANGE", key, "0", "-1")
            case "none": continue
            default:
                report.violations.append("\(key) is a \(type)")
                continue
            }
            for member in reply.array ?? [] { if let id = member.string { membership[id, default: []].append(state) } }
        }

        let inspector = try QueueInspector(name: queue, client: client)
        for (id, kind) in kinds.sorted(by: { $0.key < $1.key }) {
            let states = membership[id] ?? []
            guard states.count == 1, let state = states.first else {
                if states.isEmpty { report.lost += 1 }
                report.violations.append(
                    "job \(id) (\(kind)) is in \(states.isEmpty ? "no state: lost" : "\(states.count) states: \(states.joined(separator: ", "))")")
                continue
            }
            guard let job = try await inspector.job(id) else {
                report.lost += 1
                report.violations.append("job \(id) (\(kind)) is listed as \(state) but its record is gone")
                continue
            }
            let executions = byJob[id] ?? []
            switch state {
            case "completed":
                report.completed += 1
                let resultRun = job.resultText ?? ""
                if executions.isEmpty { report.violations.append("job \(id) completed but no handler ever ran it") }
                if let last = executions.last, resultRun != last.id {
                    report.violations.append("job \(id): the stored result is from run \(resultRun), not from its last run \(last.id)")
                }
                if resultRun != job.executionID ?? "" {
                    report.violations.append("job \(id): the result is from run \(resultRun) but the lease was \(job.executionID ?? "none")")
                }
                if let run = runs[resultRun], run.end?.outcome != "ok" {
                    report.violations.append("job \(id): completed by run \(resultRun), whose handler did not return normally")
                }
                // Attempts count real failures only: a stall, a shutdown or a lost lease gives
                // its attempt back. A failOnce job fails its first attempt, nothing else fails.
                let expectedAttempts = kind == "failOnce" ? 2 : 1
                if job.attemptsMade != expectedAttempts {
                    report.violations.append(
                        "job \(id) (\(kind)): \(job.attemptsMade) attempts used, expected \(expectedAttempts) (real failures + 1; stalls \(job.stallCount))")
                }
                if let run = runs[resultRun], run.attempt != job.attemptsMade {
                    report.violations.append("job \(id): its result came from attempt \(run.attempt), the record says \(job.attemptsMade)")
                }
            case "failed":
                report.failed += 1
                report.violations.append(
                    "job \(id) (\(kind)) failed: \(job.error?.description ?? "no error recorded") (no chaos job should fail: 3 attempts, 1 planned failure)")
            case "cancelled":
                report.cancelled += 1
                if kind != "cancel" && kind != "bulkCancel" {
                    report.violations.append("job \(id) (\(kind)) was cancelled, but only `cancel` and `bulkCancel` jobs are")
                }
                if job.attemptsMade > 1 { report.violations.append("job \(id) (\(kind)): cancelled after \(job.attemptsMade) attempts; nothing fails it") }
                if let last = executions.last, let lease = job.executionID, last.id != lease {
                    report.violations.append("job \(id): cancelled with lease \(lease) but its last run was \(last.id)")
                }
            default:
                report.violations.append("job \(id) (\(kind)) did not end: it is \(state)")
            }

            // Runs after the first: planned, or explained by a fault that hit the run before.
            for (previous, next) in zip(executions, executions.dropFirst()) {
                if previous.end?.outcome == "failed" { continue }
                report.duplicates += 1
                if !explained(previous, next) {
                    report.violations.append(
                        "job \(id) ran again (run \(next.id)) with no fault of ours between its run \(previous.id) on pid \(previous.pid) and it")
                }
            }

            // Cancellation: nothing new starts once cancel() returned.
            if let cancel = cancels[id] {
                let lateRuns = executions.filter { $0.start > cancel.at }
                // "already-<state>" outcomes: the job had ended before the cancel.
                let outcome = cancel.outcome.hasPrefix("already-") ? "alreadyFinished" : cancel.outcome
                switch outcome {
                case "cancelled", "notFound", "alreadyFinished":
                    if !lateRuns.isEmpty { report.violations.append("job \(id) started run \(lateRuns[0].id) after cancel() returned \(cancel.outcome)") }
                    if cancel.outcome == "cancelled", state != "cancelled" {
                        report.violations.append("job \(id): cancel() returned cancelled but the job is \(state)")
                    }
                case "cancelRequested":
                    // The run that was active when cancel() returned may log its start a moment
                    // later; a run *taken* after it is a violation. An execution id is a ULID made
                    // at the take, so its time tells (the record's lease may be cleared by then).
                    for late in lateRuns where late.id != job.executionID && (JobID.timestamp(of: late.id) ?? .max) > cancel.wallMs {
                        report.violations.append("job \(id) started run \(late.id), taken after cancel() returned cancelRequested")
                    }
                    if state != "cancelled" && state != "completed" { report.violations.append("job \(id): cancel requested, but it ended \(state)") }
                default:
                    report.violations.append("job \(id): unknown cancel outcome \(cancel.outcome)")
                }
            } else if kind == "cancel" || kind == "bulkCancel" {
                report.violations.append("job \(id) is a \(kind) job that its producer never cancelled")
            }
        }

        // Redis holds nothing else for the queue; no job key expires.
        var cursor = "0"
        var jobKeys: [String] = []
        let known = Set([
            keys.wait, keys.prioritized, keys.delayed, keys.active, keys.completed, keys.failed, keys.cancelled,
            keys.meta, keys.marker, keys.events, keys.sequence, keys.reaperLock, keys.rate, keys.groupPrefix + "waiting",
        ])
        // The groups' count of waiting jobs is back to 0 (a job left in a group's line shows as
        // an unexpected key and an orphan record below).
        if let left = try await client.send("GET", keys.groupPrefix + "waiting").string, left != "0" {
            report.violations.append("the groups' waiting count is \(left) with every job ended")
        }
        for _ in 0..<100_000 {
            let reply = try await client.send("SCAN", cursor, "MATCH", keys.base + "*", "COUNT", "1000")
            guard let parts = reply.array, parts.count == 2 else { break }
            cursor = parts[0].string ?? "0"
            for key in (parts[1].array ?? []).compactMap(\.string) {
                if key.hasPrefix(keys.jobPrefix) {
                    let id = String(key.dropFirst(keys.jobPrefix.count))
                    if (membership[id] ?? []).isEmpty { report.violations.append("orphan job record \(key): in no state set") }
                    jobKeys.append(key)
                } else if !known.contains(key) {
                    report.violations.append("unexpected key \(key)")
                }
            }
            if cursor == "0" { break }
        }
        var start = 0
        while start < jobKeys.count {
            let chunk = Array(jobKeys[start..<min(start + 1_000, jobKeys.count)])
            let replies = try await client.pipeline(chunk.map { RedisCommand("PTTL", $0) })
            for (key, reply) in zip(chunk, replies) where reply.int != -1 {
                report.violations.append("\(key) has a TTL (\(reply.int ?? 0) ms)")
            }
            start += chunk.count
        }
        return report
    }

    /// A fault of ours that hit `previous` before `next` started: its worker killed or stopped,
    /// a connection cut, or the Redis restart.
    private func explained(_ previous: Execution, _ next: Execution) -> Bool {
        let window = previous.start...max(previous.start, next.start)
        return faults.contains { fault in
            switch fault {
            case .kill(let pid, let at), .sigterm(let pid, let at): return pid == previous.pid && window.contains(at)
            case .cut(_, let at): return window.contains(at)
            case .redisRestart(let from, let to): return window.overlaps(from...to)
            // Either run's worker frozen in between: the previous run's lease lapsed, or the
            // next run was taken before its worker froze and its handler started after the thaw
            // (runs are ordered by handler start, which a freeze delays).
            case .stop(let pid, let from, let to): return (pid == previous.pid || pid == next.pid) && window.overlaps(from...to)
            // A full Redis must not cost a run: renewals, reaping and finishing go on.
            case .oom: return false
            }
        }
    }

    static func lines(of path: String) throws -> [[String]] {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        return text.split(separator: "\n").map { $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init) }.filter { !$0.isEmpty }
    }
}
