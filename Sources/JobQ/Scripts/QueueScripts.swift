import Foundation

/// jobq's Lua scripts, read once from the `Lua/` resource folder.
///
/// Each file `Lua/<verbObject>-<numKeys>.lua` is one atomic state move; `--@include <name>` lines
/// splice a helper file from `Lua/include/` in place (one local function or table per file, its
/// own dependencies declared the same way), so shared logic — taking the next job, retention,
/// promotion, ending as cancelled — is written once. The number in the file name is the KEYS
/// count every call passes, checked before a call is sent.
struct QueueScripts: Sendable {
    let addJob: RedisScript
    let addJobs: RedisScript
    let takeJob: RedisScript
    let finishJob: RedisScript
    let extendLeases: RedisScript
    let recoverStalled: RedisScript
    let cancelJobs: RedisScript
    let removeJobs: RedisScript
    let setPaused: RedisScript
    let setLimits: RedisScript
    let setGroup: RedisScript
    let countGroups: RedisScript
    let purgeJobs: RedisScript
    let cleanJobs: RedisScript
    let countJobs: RedisScript
    let retryJobs: RedisScript
    let obliterateQueue: RedisScript
    let setProgress: RedisScript
    let saveCheckpoint: RedisScript
    let removeJobsNamed: RedisScript
    let readEvents: RedisScript
    let upsertSchedule: RedisScript
    let changeSchedule: RedisScript
    let dueSchedules: RedisScript
    let advanceSchedules: RedisScript
    /// Worker-wide, not per queue: the heartbeat record and the registry of live workers.
    let recordHeartbeat: RedisScript
    let registerWorker: RedisScript
    let controlWorker: RedisScript

    /// Every script, for preloading with ``RedisClient/load(_:)``.
    var all: [RedisScript] {
        [
            addJob, addJobs, takeJob, finishJob, extendLeases, recoverStalled, cancelJobs, removeJobs,
            setPaused, setLimits, setGroup, countGroups, purgeJobs, cleanJobs, countJobs, retryJobs, obliterateQueue, setProgress,
            saveCheckpoint, removeJobsNamed, readEvents, upsertSchedule, changeSchedule, dueSchedules, advanceSchedules,
            recordHeartbeat, registerWorker, controlWorker,
        ]
    }

    /// The scripts of this build, or why they could not be read.
    static let shared: Result<QueueScripts, JobQError> = Result { () throws(JobQError) in try QueueScripts(directory: resourceDirectory()) }

    static func get() throws(JobQError) -> QueueScripts { try shared.get() }

    init(directory: URL) throws(JobQError) {
        let files: [String]
        do {
            files = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        } catch {
            throw JobQError(.installation, detail: "cannot list \(directory.path): \(error)")
        }
        var byName: [String: RedisScript] = [:]
        for file in files where file.hasSuffix(".lua") {
            let script = try Self.load(file: file, directory: directory)
            byName[String(file.dropLast(4).split(separator: "-").first ?? "")] = script
        }
        func named(_ name: String) throws(JobQError) -> RedisScript {
            guard let script = byName[name] else {
                throw JobQError(.installation, detail: "script \(name)-<keys>.lua is missing from \(directory.path)")
            }
            return script
        }
        addJob = try named("addJob")
        addJobs = try named("addJobs")
        takeJob = try named("takeJob")
        finishJob = try named("finishJob")
        extendLeases = try named("extendLeases")
        recoverStalled = try named("recoverStalled")
        cancelJobs = try named("cancelJobs")
        removeJobs = try named("removeJobs")
        setPaused = try named("setPaused")
        setLimits = try named("setLimits")
        setGroup = try named("setGroup")
        countGroups = try named("countGroups")
        purgeJobs = try named("purgeJobs")
        cleanJobs = try named("cleanJobs")
        countJobs = try named("countJobs")
        retryJobs = try named("retryJobs")
        obliterateQueue = try named("obliterateQueue")
        setProgress = try named("setProgress")
        saveCheckpoint = try named("saveCheckpoint")
        removeJobsNamed = try named("removeJobsNamed")
        readEvents = try named("readEvents")
        upsertSchedule = try named("upsertSchedule")
        changeSchedule = try named("changeSchedule")
        dueSchedules = try named("dueSchedules")
        advanceSchedules = try named("advanceSchedules")
        recordHeartbeat = try named("recordHeartbeat")
        registerWorker = try named("registerWorker")
        controlWorker = try named("controlWorker")
    }

    /// Reads one script file, splices its includes and takes the KEYS count from its name.
    static func load(file: String, directory: URL) throws(JobQError) -> RedisScript {
        let base = String(file.dropLast(4))
        guard let dash = base.lastIndex(of: "-"), let keyCount = Int(base[base.index(after: dash)...]) else {
            throw JobQError(.installation, detail: "script file \(file) is not named <verbObject>-<numKeys>.lua")
        }
        let text = try read(directory.appendingPathComponent(file))
        var source = try expand(text, directory: directory, file: file)
        let flags = Self.flags(text)
        if !flags.isEmpty {
            // Redis reads script flags from a first line `#!lua flags=…` (Redis 7.0 or later).
            source = "#!lua flags=\(flags.joined(separator: ","))\n" + source
        }
        return RedisScript(name: base, source: source, keyCount: keyCount)
    }

    /// The Redis script flags a header asks for on its `Flags:` line (`Flags: allow-oom. Why…`):
    /// the words before the first full stop. Each flag is justified in the header itself.
    static func flags(_ text: String) -> [String] {
        guard let end = text.range(of: "]]") else { return [] }
        for line in text[..<end.lowerBound].split(separator: "\n") {
            let t = line.trimmingCharacters(in: .whitespaces)
            guard t.hasPrefix("Flags:") else { continue }
            let list = t.dropFirst("Flags:".count).prefix { $0 != "." }
            return list.split(whereSeparator: { $0 == "," || $0 == " " }).map(String.init)
        }
        return []
    }

    /// The text with each `--@include name` line replaced by `include/name.lua`, whose own
    /// `--@include` lines (its dependencies) are spliced in first. Each helper appears once per
    /// script, before its first use; a cycle is an installation error.
    static func expand(_ text: String, directory: URL, file: String) throws(JobQError) -> String {
        var done: Set<String> = []
        var active: [String] = []
        func splice(_ text: String) throws(JobQError) -> [Substring] {
            var out: [Substring] = []
            for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
                guard line.hasPrefix("--@include ") else {
                    out.append(line)
                    continue
                }
                let name = line.dropFirst("--@include ".count).trimmingCharacters(in: .whitespaces)
                if done.contains(name) { continue }
                if active.contains(name) {
                    throw JobQError(.installation, detail: "\(file): include cycle \((active + [name]).joined(separator: " → "))")
                }
                active.append(name)
                let included = try read(directory.appendingPathComponent("include").appendingPathComponent(name + ".lua"))
                out += try splice(included)
                active.removeLast()
                done.insert(name)
            }
            return out
        }
        return try splice(text).joined(separator: "\n")
    }

    private static func read(_ url: URL) throws(JobQError) -> String {
        do {
            return try String(contentsOf: url, encoding: .utf8)
        } catch {
            throw JobQError(.installation, detail: "cannot read \(url.path): \(error)")
        }
    }

    /// The `Lua/` folder: `$JOBQ_LUA_DIR` if set; else the `jobq_JobQ.resources` bundle SwiftPM puts
    /// next to every binary (ship it with the binary); else the source tree of a development build.
    static func resourceDirectory() throws(JobQError) -> URL {
        var candidates: [URL] = []
        if let dir = ProcessInfo.processInfo.environment["JOBQ_LUA_DIR"], !dir.isEmpty {
            candidates.append(URL(fileURLWithPath: dir))
        }
        candidates.append(Bundle.main.bundleURL.appendingPathComponent("jobq_JobQ.resources/Lua"))
        if let executable = Bundle.main.executableURL?.resolvingSymlinksInPath() {
            candidates.append(executable.deletingLastPathComponent().appendingPathComponent("jobq_JobQ.resources/Lua"))
        }
        candidates.append(URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Lua"))
        for url in candidates {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("include/record.lua").path, isDirectory: &isDirectory) {
                return url
            }
        }
        throw JobQError(.installation, detail: "jobq's Lua scripts were not found (looked in \(candidates.map(\.path).joined(separator: ", ")))")
    }
}
