import Foundation
import Testing

@testable import JobQ
@testable import JobQRedis

/// The contract between the Lua files and their Swift call sites (`docs/lua-scripts.md`): every header
/// lists exactly as many KEYS as its file name says, each KEYS line names the key the Swift call
/// site passes in that position, and every result code Swift knows appears in the headers.
@Suite("Lua script headers, file names and call sites agree")
struct ScriptContractTests {
    static let directory: URL = try! QueueScripts.resourceDirectory()

    static var scriptFiles: [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: directory.path))?.filter { $0.hasSuffix(".lua") }.sorted() ?? []
    }

    /// Scripts on the worker's own global keys, not on a queue.
    static let workerScripts: Set<String> = ["recordHeartbeat-1", "registerWorker-1", "controlWorker-1"]

    /// The header: the opening `--[[ … ]]` comment.
    static func header(_ file: String) throws -> String {
        let text = try String(contentsOf: directory.appendingPathComponent(file), encoding: .utf8)
        guard text.hasPrefix("--[["), let end = text.range(of: "]]") else { return "" }
        return String(text[..<end.lowerBound])
    }

    /// `KEYS[i] pattern` lines of a header, by index.
    static func keyLines(_ header: String) -> [Int: String] {
        var lines: [Int: String] = [:]
        for line in header.split(separator: "\n") {
            let t = line.trimmingCharacters(in: .whitespaces)
            guard t.hasPrefix("KEYS["), let close = t.firstIndex(of: "]"), let i = Int(t[t.index(t.startIndex, offsetBy: 5)..<close]) else { continue }
            let rest = t[t.index(after: close)...].trimmingCharacters(in: .whitespaces)
            lines[i] = String(rest.split(separator: " ").first ?? "")
        }
        return lines
    }

    @Test("there are scripts, one file per state move, named <verbObject>-<numKeys>.lua")
    func files() throws {
        #expect(Self.scriptFiles.count >= 17)
        for file in Self.scriptFiles {
            let base = file.dropLast(4)
            let parts = base.split(separator: "-")
            #expect(parts.count == 2 && Int(parts[1]) != nil, "\(file)")
            #expect(parts[0].first?.isLowercase == true, "\(file) starts with a verb")
        }
    }

    @Test("each header has a purpose, KEYS 1…N matching the file name, ARGV lines and its returns")
    func headers() throws {
        for file in Self.scriptFiles {
            let header = try Self.header(file)
            #expect(!header.isEmpty, "\(file) has no --[[ header ]]")
            let n = Int(file.dropLast(4).split(separator: "-")[1])!
            let keys = Self.keyLines(header)
            #expect(keys.count == n, "\(file): header lists \(keys.count) KEYS")
            #expect(Set(keys.keys) == Set(1...max(n, 1)).intersection(n == 0 ? [] : Set(1...n)), "\(file): KEYS numbered 1…\(n)")
            for (i, pattern) in keys {
                // Worker-wide scripts touch one global key each (their own slot); every other
                // script stays under its queue's hash tag.
                let global = Self.workerScripts.contains(String(file.dropLast(4))) && n == 1
                #expect(
                    pattern.hasPrefix("jobq:{<q>}:") || (global && (pattern == "jobq:workers" || pattern == "jobq:worker:<id>")),
                    "\(file) KEYS[\(i)] is under the queue's hash tag: \(pattern)")
            }
            #expect(header.contains("Returns"), "\(file) documents its return")
            #expect(header.contains("Events"), "\(file) documents its events")
            if !file.hasPrefix("countJobs-") { #expect(header.contains("ARGV[1]"), "\(file) documents ARGV") }
            if header.contains("Derived keys") == false {
                let body = try String(contentsOf: Self.directory.appendingPathComponent(file), encoding: .utf8)
                #expect(!body.contains("jobPrefix .."), "\(file) builds job keys but lists no Derived keys")
            }
        }
    }

    /// What a builder made, without its reply type.
    struct Built {
        var script: RedisScript
        var keys: [String]
        var argumentCount: Int
        var idempotent: Bool
        init<Reply>(_ call: ScriptCall<Reply>) {
            (script, keys, argumentCount, idempotent) = (call.script, call.keys, call.arguments.count, call.idempotent)
        }
    }

    /// Every script's call, made by its real builder with sample values.
    static func builtCalls() throws -> [Built] {
        let client = RedisClient(configuration: RedisConfiguration(endpoint: .unix(path: "/nonexistent")))
        let core = try QueueCore(name: "contract", client: client, settings: QueueSettings())
        let lease = QueueCore.Lease(token: "T1", workerID: "W1", length: .seconds(10))
        let job = JobQueue.NewJob(name: "n", payload: .bytes([0, 1]), options: JobOptions(priority: .high, attempts: 5))
        return [
            Built(core.addJobCall(id: "ID1", job: job)),
            Built(core.cancelJobsCall(["ID1", "ID2"], reason: "r", requestedBy: "b", sharded: false)),
            Built(core.takeJobCall(lease: lease)),
            Built(core.finishJobCall("ID1", token: "T1", outcome: "completed", value: [1], reason: "", retryDelayMs: -1, next: lease)),
            Built(core.extendLeasesCall([("ID1", "T1"), ("ID2", "T2")], length: .seconds(10))),
            Built(core.recoverStalledCall(batch: 10, holder: "W1", lockMs: 2500)),
            Built(core.setProgressCall("ID1", token: "T1", percent: 50, message: "m")),
            Built(core.saveCheckpointCall("ID1", token: "T1", bytes: [1, 2])),
            Built(core.countJobsCall()),
            Built(core.removeJobsCall(["ID1"])),
            Built(core.removeJobsNamedCall("n", in: core.keys.completed, state: .completed, cursor: 0)),
            Built(core.setPausedCall(true)),
            Built(core.setLimitsCall([(.concurrency, "3"), (.rateCount, "")], clearAll: true)),
            Built(core.setGroupCall("G1", fields: [(.paused, "1")], clearAll: false)),
            Built(core.countGroupsCall(["G1", "G2"])),
            Built(core.purgeJobsCall()),
            Built(core.cleanJobsCall(.completed, olderThan: .seconds(1), batch: 10)),
            Built(core.retryJobsCall(["ID1", "ID2"])),
            Built(core.retryAllFailedCall()),
            Built(core.obliterateQueueCall(force: true)),
            Built(core.readEventsCall(after: "0-0", count: 10)),
            Built(core.upsertScheduleCall("ID1", spec: [(.kind, "cron"), (.expression, "* * * * *")], firstTick: 1, advanceAt: 1)),
            Built(core.changeScheduleCall("ID1", .pause)),
            Built(core.addJobsCall([("ID1", JobQueue.NewJob(name: "n", payload: .json("{}"))), ("ID2", JobQueue.NewJob(name: "n", payload: .bytes([1])))])),
            Built(core.dueSchedulesCall(most: 10)),
            Built(
                core.advanceSchedulesCall([
                    (
                        StoredSchedule(
                            id: "ID1",
                            fields: ["k": Array("cron".utf8), "x": Array("* * * * *".utf8), "n": Array("n".utf8), "v": Array("1".utf8)])!,
                        ScheduleStep(ticks: [.init(tick: 1, jobID: "ID1@1", due: 1)], nextTick: 2, advanceAt: 2)
                    )
                ])),
            Built(ScriptCall<Int>.registerWorker(core.scripts, workerID: "ID1", expiryMs: 9000)),
            Built(ScriptCall<HeartbeatRequests>.recordHeartbeat(core.scripts, workerID: "ID1", expiryMs: 9000, fields: [(.host, "h"), (.pid, 1)])),
            Built(ScriptCall<Int?>.controlWorker(core.scripts, workerID: "ID1", field: .wantPaused, value: "1")),
        ]
    }

    /// The ARGV a header lists: the fixed ones, and the index from which more may follow
    /// (`ARGV[6...]`, or `ARGV[5], ARGV[6], ...`).
    static func argumentLines(_ header: String) -> (fixed: Int, variadicFrom: Int?) {
        var fixed = 0
        var variadic: Int?
        for line in header.split(separator: "\n") {
            let t = line.trimmingCharacters(in: .whitespaces)
            if let m = t.firstMatch(of: /^ARGV\[(\d+)\]/), let i = Int(m.1) {
                if t.firstMatch(of: /^ARGV\[\d+\], ARGV\[\d+\], \.\.\./) != nil { variadic = min(variadic ?? i, i) } else { fixed = max(fixed, i) }
            }
            for m in t.matches(of: /ARGV\[(\d+)\.\.\.\]/) { if let i = Int(m.1) { variadic = min(variadic ?? i, i) } }
        }
        if let v = variadic { fixed = min(fixed, v - 1) }
        return (fixed, variadic)
    }

    @Test("every script's call builder passes the KEYS its header names, in order, and the ARGV it lists")
    func builders() throws {
        let calls = try Self.builtCalls()
        #expect(Set(calls.map(\.script.name)) == Set(Self.scriptFiles.map { String($0.dropLast(4)) }), "every script has a builder")
        for call in calls {
            let script = call.script
            #expect(script.keyCount == call.keys.count, "\(script.name) is called with \(call.keys.count) keys")
            let header = try Self.header(script.name + ".lua")
            let patterns = Self.keyLines(header)
            for (i, key) in call.keys.enumerated() {
                let expected = (patterns[i + 1] ?? "?")
                    .replacingOccurrences(of: "<q>", with: "contract")
                    .replacingOccurrences(of: "<id>", with: "ID1")
                    .replacingOccurrences(of: "<state>", with: "completed")
                #expect(key == expected, "\(script.name) KEYS[\(i + 1)]: Swift passes \(key), header says \(expected)")
            }
            let argv = Self.argumentLines(header)
            if argv.variadicFrom != nil {
                #expect(call.argumentCount >= argv.fixed, "\(script.name): \(call.argumentCount) ARGV, the header lists \(argv.fixed) before the variable part")
            } else {
                #expect(call.argumentCount == argv.fixed, "\(script.name): \(call.argumentCount) ARGV, the header lists \(argv.fixed)")
            }
        }
    }

    @Test("every call may be resent after a lost reply except a take, which would take a second job and leave the first to stall")
    func idempotency() throws {
        let calls = try Self.builtCalls()
        #expect(calls.filter { !$0.idempotent }.map(\.script.name) == ["takeJob-11"])
    }

    @Test("every function an expanded script calls is defined in it, or is Lua's or Redis's: a missing include fails here, not in production")
    func callsResolve() throws {
        let builtins: Set<String> = [
            "if", "elseif", "while", "until", "and", "or", "not", "return", "function", "in",
            "tonumber", "tostring", "type", "unpack", "pcall", "ipairs", "pairs", "error", "select", "next", "assert",
        ]
        for script in try QueueScripts.get().all {
            // Code only: headers and block comments (`--[[ … ]]`) are prose.
            let source = script.source.replacing(/--\[\[(.|\n)*?\]\]/, with: "")
            var defined = Set(source.matches(of: /local\s+function\s+(\w+)/).map { String($0.1) })
            for m in source.matches(of: /local\s+([\w\s,]+?)\s*=/) {
                for name in m.1.split(separator: ",") { defined.insert(name.trimmingCharacters(in: .whitespaces)) }
            }
            for line in source.split(separator: "\n") {
                let code = line.split(separator: "--", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
                let unquoted = code.replacing(/'[^']*'/, with: "''")
                for m in unquoted.matches(of: /(^|[^\w.:])([A-Za-z_]\w*)\s*\(/) {
                    let name = String(m.2)
                    #expect(defined.contains(name) || builtins.contains(name), "\(script.name) calls \(name)(), which it does not define: \(line)")
                }
            }
        }
    }

    @Test("the header parser sees fixed and variable ARGV (so the builder check can fail)")
    func argumentParser() {
        #expect(Self.argumentLines("  ARGV[1] a\n  ARGV[2] b\n").fixed == 2)
        #expect(Self.argumentLines("  ARGV[1] a\n  ARGV[2], ARGV[3], ... ids").variadicFrom == 2)
        #expect(Self.argumentLines("  ARGV[1] a\n  ARGV[2] b\n  ARGV[3...] pairs").fixed == 2)
    }

    @Test("every result code Swift knows is listed, with its value, where scripts define them")
    func codes() throws {
        let common = try String(contentsOf: Self.directory.appendingPathComponent("include/codes.lua"), encoding: .utf8)
        for code in ScriptCode.allCases {
            #expect(common.contains("\(code.rawValue) \(code.luaName)"), "codes.lua lists \(code.rawValue) \(code.luaName)")
        }
        // And each code a header returns by number is one Swift knows.
        for file in Self.scriptFiles {
            let header = try Self.header(file)
            for match in header.matches(of: /\{(-\d+)[,}]/) {
                let value = Int(match.1)!
                #expect(ScriptCode(rawValue: value) != nil, "\(file) returns \(value), unknown to ScriptCode")
            }
        }
    }

    @Test("a header's Flags line becomes the script's first line (#!lua flags=…) and says why")
    func flags() throws {
        let scripts = try QueueScripts.get()
        for script in scripts.all {
            let header = try Self.header(script.name + ".lua")
            let asked = QueueScripts.flags(header + "]]")
            if asked.isEmpty {
                #expect(!script.source.hasPrefix("#!"), "\(script.name)")
            } else {
                #expect(script.source.hasPrefix("#!lua flags=\(asked.joined(separator: ","))\n"), "\(script.name)")
                let line = header.split(separator: "\n").first { $0.contains("Flags:") } ?? ""
                #expect(line.count > 40, "\(script.name) says why it needs \(asked)")
            }
        }
        // Those a full Redis must still run (renewal, reaping, take, finish, heartbeats).
        for script in [scripts.extendLeases, scripts.recoverStalled, scripts.takeJob, scripts.finishJob, scripts.recordHeartbeat, scripts.registerWorker] {
            #expect(script.source.hasPrefix("#!lua flags=allow-oom"), "\(script.name) runs under OOM")
        }
        #expect(!scripts.addJob.source.hasPrefix("#!"), "adds are refused under OOM")
    }

    @Test("includes are spliced and the sources carry no globals")
    func includes() throws {
        let scripts = try QueueScripts.get()
        for script in scripts.all {
            #expect(!script.source.split(separator: "\n").contains { $0.hasPrefix("--@include ") }, "\(script.name) has an unresolved include")
            for line in script.source.split(separator: "\n") where line.hasPrefix("function ") {
                Issue.record("\(script.name) defines a global function: \(line)")
            }
        }
        #expect(scripts.finishJob.source.contains("local function takeNext"))
    }
}
