import Foundation
import Yams

/// Every key `jobq-worker` reads, with its type, checked before any value is used: a wrong type,
/// an unknown key or an unknown `JOBQ_*` variable is a configuration error (exit 78) naming it,
/// with a "did you mean" for a near miss — never a silent fall back to a default.
///
/// YAML aliases are expanded by the parser; the check walks at most ``maxNodes`` values, so a
/// file built to expand exponentially (an alias bomb) is refused at once instead of stalling.
enum ConfigSchema {
    enum Kind: CustomStringConvertible {
        case string, integer, boolean, list

        var description: String {
            switch self {
            case .string: "a string"
            case .integer: "an integer"
            case .boolean: "true or false"
            case .list: "a list of strings"
            }
        }
    }

    /// Dotted key → type. The environment form is `JOBQ_` + the key in upper case with dots and
    /// camelCase word breaks as underscores.
    static let keys: [String: Kind] = [
        "redis.url": .string, "redis.password": .string, "redis.passwordFile": .string,
        "redis.sentinelPassword": .string, "redis.sentinelPasswordFile": .string,
        "redis.tls.caFile": .string, "redis.tls.certFile": .string, "redis.tls.keyFile": .string,
        "redis.tls.serverName": .string, "redis.tls.insecureSkipVerify": .boolean,
        "redis.sentinel.tls.enabled": .boolean, "redis.sentinel.tls.caFile": .string, "redis.sentinel.tls.certFile": .string,
        "redis.sentinel.tls.keyFile": .string, "redis.sentinel.tls.serverName": .string, "redis.sentinel.tls.insecureSkipVerify": .boolean,
        "worker.queues": .list, "worker.concurrency": .integer, "worker.lease": .string,
        "worker.shutdownGrace": .string, "worker.id": .string, "worker.requireDurable": .boolean,
        "worker.httpThrottleOn429": .boolean,
        "handlers": .list, "log.level": .string, "metrics.port": .integer, "metrics.address": .string,
    ]

    static let maxNodes = 10_000

    /// `JOBQ_*` names a job's program gets (never configuration) and the ones other parts of
    /// jobq read: `JOBQ_LUA_DIR` (where the Lua scripts are) and `JOBQ_TEST_TMPDIR` (the test
    /// suite's scratch directory).
    static let ignoredVariables: Set<String> = ["JOBQ_QUEUE_NAME", "JOBQ_ATTEMPT", "JOBQ_EXECUTION_ID", "JOBQ_LUA_DIR", "JOBQ_TEST_TMPDIR"]

    static func environmentName(_ key: String) -> String {
        var out = "JOBQ_"
        for c in key {
            if c == "." {
                out.append("_")
            } else if c.isUppercase {
                out.append("_")
                out.append(c)
            } else {
                out.append(c.uppercased())
            }
        }
        return out
    }

    /// Checks the YAML text of a configuration file.
    static func check(yaml text: String) throws(WorkerSettings.Problem) {
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch {
            let first = "\(error)".split(whereSeparator: \.isNewline).first.map(String.init) ?? "\(error)"
            throw .init(key: "--config", value: "", expected: "valid YAML (\(first.trimmingCharacters(in: CharacterSet(charactersIn: ": "))))")
        }
        guard let root else { return }  // an empty file: defaults and flags
        var budget = maxNodes
        guard case .mapping = root else {
            throw .init(key: "--config", value: "", expected: "a YAML mapping of sections (redis:, worker:, handlers:, schedules:, metrics:, log:)")
        }
        try walk(root, path: "", budget: &budget)
    }

    private static func walk(_ node: Node, path: String, budget: inout Int) throws(WorkerSettings.Problem) {
        budget -= 1
        guard budget > 0 else {
            throw .init(key: "--config", value: "", expected: "a file of at most \(maxNodes) values (YAML aliases that expand it are not supported)")
        }
        if let kind = keys[path] {
            try checkValue(node, key: path, kind: kind, budget: &budget)
            return
        }
        if path == "schedules" {
            // A list of mappings, checked entry by entry by ScheduleConfig; here only counted.
            try count(node, budget: &budget)
            return
        }
        if isUnset(node) { return }  // a section whose keys are all commented out
        guard case .mapping(let mapping) = node else {
            throw .init(key: path, value: describe(node), expected: "a section (a mapping of keys)")
        }
        for (keyNode, value) in mapping {
            guard let name = keyNode.string else {
                throw .init(key: path.isEmpty ? "(top level)" : path, value: describe(keyNode), expected: "string keys")
            }
            let full = path.isEmpty ? name : path + "." + name
            let known = keys[full] != nil || keys.keys.contains { $0.hasPrefix(full + ".") } || full == "schedules"
            guard known else {
                let hint = suggestion(for: full, among: Array(keys.keys)).map { " (did you mean \($0)?)" } ?? ""
                throw .init(key: full, value: describe(value), expected: "no such key\(hint); known keys: \(keys.keys.sorted().joined(separator: ", "))")
            }
            try walk(value, path: full, budget: &budget)
        }
    }

    private static func count(_ node: Node, budget: inout Int) throws(WorkerSettings.Problem) {
        budget -= 1
        guard budget > 0 else {
            throw .init(key: "--config", value: "", expected: "a file of at most \(maxNodes) values (YAML aliases that expand it are not supported)")
        }
        switch node {
        case .mapping(let mapping):
            for (k, v) in mapping {
                try count(k, budget: &budget)
                try count(v, budget: &budget)
            }
        case .sequence(let items):
            for item in items { try count(item, budget: &budget) }
        default: break
        }
    }

    private static func checkValue(_ node: Node, key: String, kind: Kind, budget: inout Int) throws(WorkerSettings.Problem) {
        if isUnset(node) { return }
        switch kind {
        case .string:
            guard case .scalar = node else { throw .init(key: key, value: describe(node), expected: kind.description) }
        case .integer:
            guard case .scalar = node, node.int != nil else { throw .init(key: key, value: describe(node), expected: kind.description) }
        case .boolean:
            guard case .scalar = node, node.bool != nil else { throw .init(key: key, value: describe(node), expected: kind.description) }
        case .list:
            guard case .sequence(let items) = node else { throw .init(key: key, value: describe(node), expected: kind.description) }
            for item in items {
                budget -= 1
                guard budget > 0 else {
                    throw .init(key: "--config", value: "", expected: "a file of at most \(maxNodes) values (YAML aliases that expand it are not supported)")
                }
                guard case .scalar = item else { throw .init(key: key, value: describe(item), expected: "a list of strings (one item is not)") }
            }
        }
    }

    /// `key:` with nothing after it, `~` or `null`: unset.
    private static func isUnset(_ node: Node) -> Bool {
        guard case .scalar(let s) = node, s.style == .plain else { return false }
        return s.string.isEmpty || s.string == "~" || s.string.lowercased() == "null"
    }

    /// Checks the `JOBQ_*` environment: each variable names a key (or is one jobq reads elsewhere).
    static func check(environment: [String: String]) throws(WorkerSettings.Problem) {
        let known = Dictionary(uniqueKeysWithValues: keys.keys.map { (environmentName($0), $0) })
        for name in environment.keys.sorted() where name.hasPrefix("JOBQ_") && !name.hasPrefix("JOBQ_JOB_") {
            if known[name] != nil || ignoredVariables.contains(name) { continue }
            let hint = suggestion(for: name, among: Array(known.keys)).map { " (did you mean \($0)?)" } ?? ""
            throw .init(key: name, value: "(hidden)", expected: "no such variable\(hint); jobq-worker reads \(known.keys.sorted().joined(separator: ", "))")
        }
    }

    /// The closest known name within an edit distance of 3 (case-insensitive), if any.
    static func suggestion(for name: String, among candidates: [String]) -> String? {
        let target = Array(name.lowercased())
        var best: (String, Int)?
        for candidate in candidates {
            let d = distance(target, Array(candidate.lowercased()))
            if d <= 3, d < (best?.1 ?? .max) { best = (candidate, d) }
        }
        return best?.0
    }

    private static func distance(_ a: [Character], _ b: [Character]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }

    private static func describe(_ node: Node) -> String {
        switch node {
        case .scalar(let s): s.string
        case .sequence: "a list"
        case .mapping: "a section"
        case .alias: "an alias"
        }
    }
}
