import Foundation
import JobQ
import Yams

/// One entry of the config file's `schedules:` list (`docs/schedules.md`), checked.
struct ScheduleEntry {
    let id: String
    let queue: String
    let spec: ScheduleSpec
    let job: JobQueue.NewJob
    let options: ScheduleOptions
}

/// Reads `schedules:` from the worker's YAML file:
///
/// ```yaml
/// schedules:
///   - id: nightly-report
///     queue: reports            # default: the worker's first queue
///     cron: "0 2 * * *"         # or every: 5m (with startingAt: an ISO 8601 time)
///     timeZone: Europe/Berlin
///     job: report
///     data: {kind: daily}       # the payload, as YAML: sent as JSON
///     options: {attempts: 5, priority: high, timeout: 10m, backoff: "exponential:1s", group: tenant-1}
///     misfire: fireOnce         # skip, fireOnce, catchUp:N
///     overlap: skipIfRunning    # allow, skipIfRunning, cancelPrevious
///     jitter: 5s
///     misfireGrace: 1m
/// ```
enum ScheduleConfig {
    static let keys: Set<String> = [
        "id", "queue", "cron", "timeZone", "every", "startingAt", "job", "data", "options", "misfire", "overlap", "jitter", "misfireGrace",
    ]
    static let optionKeys: Set<String> = ["attempts", "priority", "timeout", "backoff", "group", "keepCompleted", "keepFailed", "maxStalls"]

    /// The file without its top-level `schedules:` (nil when it has none), for the provider that
    /// reads the other keys.
    static func withoutSchedules(_ text: String) -> String? {
        guard let root = try? Yams.compose(yaml: text), case .mapping(var mapping) = root else { return nil }
        guard let key = mapping.keys.first(where: { $0.string == "schedules" }) else { return nil }
        mapping[key] = nil
        return (try? Yams.serialize(node: .mapping(mapping))) ?? nil
    }

    static func parse(yaml text: String, queues: [String]) throws(WorkerSettings.Problem) -> [ScheduleEntry] {
        let root: Any?
        do {
            root = try Yams.load(yaml: text)
        } catch {
            throw .init(key: "schedules", value: "", expected: "valid YAML")
        }
        guard let top = root as? [String: Any], let value = top["schedules"], !(value is NSNull) else { return [] }
        guard let items = value as? [Any] else { throw .init(key: "schedules", value: "", expected: "a list of schedules (- id: …)") }
        var entries: [ScheduleEntry] = []
        var seen = Set<String>()
        for (index, item) in items.enumerated() {
            let at = "schedules[\(index)]"
            guard let map = item as? [String: Any] else { throw .init(key: at, value: "", expected: "a mapping (id:, cron: or every:, job:…)") }
            for key in map.keys.sorted() where !keys.contains(key) {
                let hint = ConfigSchema.suggestion(for: key, among: Array(keys)).map { " (did you mean \($0)?)" } ?? ""
                throw .init(key: "\(at).\(key)", value: "", expected: "no such key\(hint); known: \(keys.sorted().joined(separator: ", "))")
            }
            func string(_ key: String) throws(WorkerSettings.Problem) -> String? {
                guard let v = map[key], !(v is NSNull) else { return nil }
                if let s = v as? String { return s }
                if let n = v as? Int { return String(n) }
                throw .init(key: "\(at).\(key)", value: "\(v)", expected: "a string")
            }
            guard let id = try string("id") else { throw .init(key: "\(at).id", value: "", expected: "the schedule's id") }
            let path = "schedules.\(id)"
            do {
                try JobQueue.validate(scheduleID: id, queue: queues[0])
            } catch {
                throw .init(key: "\(at).id", value: id, expected: error.detail)
            }
            let queue = try string("queue") ?? queues[0]
            guard queues.contains(queue) else {
                throw .init(key: "\(path).queue", value: queue, expected: "one of this worker's queues (\(queues.joined(separator: ", "))), which advance it")
            }
            guard seen.insert(queue + "\u{0}" + id).inserted else { throw .init(key: "\(path).id", value: id, expected: "one entry per id and queue") }
            let cron = try string("cron")
            let every = try string("every")
            let spec: ScheduleSpec
            switch (cron, every) {
            case (let cron?, nil):
                if map["startingAt"] != nil { throw .init(key: "\(path).startingAt", value: "", expected: "startingAt goes with every:") }
                spec = .cron(cron, timeZone: try string("timeZone") ?? "UTC")
            case (nil, let every?):
                if map["timeZone"] != nil { throw .init(key: "\(path).timeZone", value: "", expected: "timeZone goes with cron:") }
                guard let d = Duration(parsing: every) else { throw .init(key: "\(path).every", value: every, expected: "a duration: 30s, 5m, 1h") }
                var start: Date?
                if let text = try string("startingAt") {
                    guard let date = ISO8601DateFormatter().date(from: text) else {
                        throw .init(key: "\(path).startingAt", value: text, expected: "an ISO 8601 time (2026-12-01T00:00:00Z)")
                    }
                    start = date
                } else if let date = map["startingAt"] as? Date {
                    start = date
                }
                spec = .every(d, startingAt: start)
            default:
                throw .init(key: path, value: "", expected: "cron: EXPR or every: DURATION (one of them)")
            }
            do {
                try spec.validate()
            } catch {
                throw .init(key: path, value: spec.description, expected: error.detail)
            }
            guard let name = try string("job") else { throw .init(key: "\(path).job", value: "", expected: "the job name each tick adds") }
            var payload = JobPayload.json("{}")
            if let data = map["data"], !(data is NSNull) {
                let json = jsonValue(data)
                guard JSONSerialization.isValidJSONObject([json]),
                    let bytes = try? JSONSerialization.data(withJSONObject: json, options: [.fragmentsAllowed, .sortedKeys])
                else {
                    throw .init(key: "\(path).data", value: "", expected: "a value JSON can carry")
                }
                payload = JobPayload(bytes: Array(bytes), encoding: .json)
            }
            let jobOptions = try options(map["options"], path: "\(path).options")
            var policies = ScheduleOptions()
            if let m = try string("misfire") {
                guard let p = MisfirePolicy(m) else { throw .init(key: "\(path).misfire", value: m, expected: "skip, fireOnce or catchUp:N") }
                policies.misfire = p
            }
            if let o = try string("overlap") {
                guard let p = OverlapPolicy(rawValue: o) else {
                    throw .init(key: "\(path).overlap", value: o, expected: "allow, skipIfRunning or cancelPrevious")
                }
                policies.overlap = p
            }
            for (key, keyPath) in [("jitter", \ScheduleOptions.jitter), ("misfireGrace", \ScheduleOptions.misfireGrace)] {
                if let text = try string(key) {
                    guard let d = Duration(parsing: text) else { throw .init(key: "\(path).\(key)", value: text, expected: "a duration: 5s, 1m") }
                    policies[keyPath: keyPath] = d
                }
            }
            do {
                try policies.validate()
            } catch {
                throw .init(key: path, value: "", expected: error.detail)
            }
            entries.append(ScheduleEntry(id: id, queue: queue, spec: spec, job: .init(name: name, payload: payload, options: jobOptions), options: policies))
        }
        return entries
    }

    private static func options(_ value: Any?, path: String) throws(WorkerSettings.Problem) -> JobOptions {
        var options = JobOptions()
        guard let value, !(value is NSNull) else { return options }
        guard let map = value as? [String: Any] else { throw .init(key: path, value: "", expected: "a mapping (attempts:, priority:…)") }
        for key in map.keys.sorted() where !optionKeys.contains(key) {
            throw .init(key: "\(path).\(key)", value: "", expected: "no such option; known: \(optionKeys.sorted().joined(separator: ", "))")
        }
        func int(_ key: String) throws(WorkerSettings.Problem) -> Int? {
            guard let v = map[key] else { return nil }
            guard let n = v as? Int else { throw .init(key: "\(path).\(key)", value: "\(v)", expected: "an integer") }
            return n
        }
        func text(_ key: String) -> String? { map[key].map { "\($0)" } }
        if let a = try int("attempts") { options.attempts = a }
        if let m = try int("maxStalls") { options.maxStalls = m }
        if let p = text("priority") {
            guard let priority = JobPriority(parsing: p) else { throw .init(key: "\(path).priority", value: p, expected: "high, normal, low or -1000…1000") }
            options.priority = priority
        }
        if let t = text("timeout") {
            guard let d = Duration(parsing: t) else { throw .init(key: "\(path).timeout", value: t, expected: "a duration: 30s, 5m") }
            options.timeout = d
        }
        if let b = text("backoff") {
            guard let backoff = Backoff(parsing: b) else {
                throw .init(key: "\(path).backoff", value: b, expected: "exponential:1s, linear:500ms or fixed:10s (optionally :max=1h)")
            }
            options.backoff = backoff
        }
        options.group = text("group")
        for (key, flag) in [("keepCompleted", \JobOptions.removeOnComplete), ("keepFailed", \JobOptions.removeOnFail)] {
            if let n = try int(key) {
                guard n == 0 else { throw .init(key: "\(path).\(key)", value: String(n), expected: "0 (delete the record when it ends so), the only value") }
                options[keyPath: flag] = true
            }
        }
        do {
            try options.validate(queue: "schedule")
        } catch {
            throw .init(key: path, value: "", expected: error.detail)
        }
        return options
    }

    /// A YAML value as JSON can carry it (timestamps become ISO 8601 text).
    private static func jsonValue(_ value: Any) -> Any {
        switch value {
        case let map as [String: Any]: return map.mapValues(jsonValue)
        case let list as [Any]: return list.map(jsonValue)
        case let date as Date: return ISO8601DateFormatter().string(from: date)
        case let data as Data: return data.base64EncodedString()
        default: return value
        }
    }
}
