import Foundation
import JobQ

/// Where and how a run measured: the machine, the Redis and the command that reproduces it.
struct BenchEnvironment: Encodable {
    var date: String
    var command: String
    var runs: Int
    var quick: Bool
    var cores: Int
    var memoryGiB: Double
    var cpu: String
    var kernel: String
    var os: String
    var build: String
    var redisVersion: String
    var redisAllocator: String
    var redisTransport: String
    /// hz, appendonly, appendfsync, maxmemory-policy, save, io-threads (as CONFIG GET gives them).
    var redisConfig: [String: String]
    var bullmq: String

    static func describe(client: RedisClient, command: String, runs: Int, quick: Bool, ownServer: Bool) async throws -> BenchEnvironment {
        let info = try await RedisServerInfo.fetch(from: client)
        var config: [String: String] = [:]
        for name in ["hz", "appendonly", "appendfsync", "maxmemory-policy", "save", "io-threads"] {
            // An ACL user may not be allowed CONFIG: the figure is then "unknown".
            if let reply = try? await client.send("CONFIG", "GET", name), let items = reply.array, items.count == 2 {
                config[name] = items[1].string ?? ""
            } else {
                config[name] = "unknown"
            }
        }
        let transport: String
        switch client.configuration.endpoint {
        case .tcp(let host, _): transport = "TCP \(host)\(ownServer ? " (a server the bench started)" : "")"
        case .unix: transport = "unix socket"
        }
        #if DEBUG
            let build = "debug"
        #else
            let build = "release"
        #endif
        return BenchEnvironment(
            date: ISO8601DateFormatter().string(from: Date()),
            command: command, runs: runs, quick: quick,
            cores: ProcessInfo.processInfo.activeProcessorCount,
            memoryGiB: Double(ProcessInfo.processInfo.physicalMemory) / 1_073_741_824,
            cpu: Self.cpuModel(), kernel: Self.kernel(), os: Self.osName(), build: build,
            redisVersion: info.version, redisAllocator: info.fields["mem_allocator"] ?? "unknown", redisTransport: transport,
            redisConfig: config, bullmq: BullMQReference.version())
    }

    var summary: String {
        "\(cores) cores, \(Int(memoryGiB.rounded())) GiB, Linux \(kernel), redis \(redisVersion) over \(redisTransport)"
    }

    var markdown: String {
        let config = redisConfig.sorted { $0.key < $1.key }.map { "`\($0.key) \($0.value.isEmpty ? "\"\"" : $0.value)`" }.joined(separator: ", ")
        return """
            Measured \(date) with `\(command)` (\(build) build, \(runs) run\(runs == 1 ? "" : "s") per figure\(quick ? ", --quick: smaller counts" : "")).\u{20}\u{20}
            Machine: \(cores) cores (\(cpu)), \(String(format: "%.0f", memoryGiB)) GiB, Linux \(kernel), \(os).\u{20}\u{20}
            Redis \(redisVersion) (\(redisAllocator)) over \(redisTransport): \(config). BullMQ reference: bullmq \(bullmq) (Python).
            """
    }

    private static func kernel() -> String {
        var name = utsname()
        uname(&name)
        return withUnsafeBytes(of: &name.release) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
    }

    private static func cpuModel() -> String {
        let text = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let line = text.split(separator: "\n").first { $0.hasPrefix("model name") }
        return line.flatMap { $0.split(separator: ":", maxSplits: 1).last }.map { $0.trimmingCharacters(in: .whitespaces) } ?? "unknown CPU"
    }

    private static func osName() -> String {
        let text = (try? String(contentsOfFile: "/etc/os-release", encoding: .utf8)) ?? ""
        let line = text.split(separator: "\n").first { $0.hasPrefix("PRETTY_NAME=") }
        return line.map { String($0.dropFirst(12)).trimmingCharacters(in: CharacterSet(charactersIn: "\"")) } ?? "unknown OS"
    }
}

/// BENCHMARKS.md: hand-written method and analysis, with one generated block per scenario
/// between `<!-- jobq-bench:NAME -->` and `<!-- /jobq-bench:NAME -->`, and the latest run's
/// environment between `<!-- jobq-bench:environment -->` markers. A run rewrites the blocks of
/// the scenarios it ran and leaves everything else as it was; a scenario with no block yet gets
/// a new section at the end.
struct BenchmarksFile {
    let path: String

    static let titles = [
        "reference": "References: this server without jobq, and BullMQ",
        "client": "Client layer",
        "enqueue": "Adding jobs",
        "drain": "Running jobs",
        "flow": "Flow control",
        "steady": "Steady load: producers and workers at once",
        "scale": "Scaling out worker processes",
        "depth": "Deep queues",
        "cancel": "Cancelling jobs",
        "delayed": "Delayed jobs",
        "recovery": "Recovery after kill -9",
        "memory": "Memory",
    ]

    /// `complete`: every scenario ran, so the targets summary is rewritten too.
    func update(environment: BenchEnvironment, reports: [ScenarioReport], complete: Bool) throws {
        var text =
            (try? String(contentsOfFile: path, encoding: .utf8)) ?? """
                # jobq benchmarks

                Every figure is a ratio to a reference measured in the same run on the same server
                (`docs/performance.md`). Written by `jobq-bench`; see the command in each section.

                <!-- jobq-bench:environment -->
                <!-- /jobq-bench:environment -->

                """
        text = Self.replacing(block: "environment", in: text, with: "Latest run: " + environment.markdown, title: "Environment")
        for report in reports {
            let body = environment.markdown + "\n\n" + report.markdown + "\n\n" + "(\(report.scenario): \(Int(report.seconds)) s)"
            text = Self.replacing(block: report.scenario, in: text, with: body, title: Self.titles[report.scenario] ?? report.scenario)
        }
        // The targets table: this run's rows for the scenarios it ran, the earlier rows for the rest.
        let previous =
            Self.block("targets", in: text)?.split(separator: "\n").map(String.init).filter { $0.hasPrefix("| ") && !$0.hasPrefix("| scenario ") } ?? []
        let ran = Set(reports.map(\.scenario))
        let kept = complete ? [] : previous.filter { row in !ran.contains(row.dropFirst(2).prefix { $0 != " " }.description) }
        text = Self.replacing(block: "targets", in: text, with: Self.targets(reports, keeping: kept), title: "Targets")
        try text.write(toFile: path, atomically: true, encoding: .utf8)
    }

    /// Every figure with a target, met or missed: rows kept from earlier runs for scenarios this
    /// run did not measure, in the scenarios' order.
    static func targets(_ reports: [ScenarioReport], keeping earlier: [String] = []) -> String {
        var rows = earlier
        for r in reports {
            for f in r.figures where f.target != nil {
                let status = f.met.map { $0 ? "met" : "**missed**" } ?? "not measured"
                rows.append(
                    "| \(r.scenario) | \(f.name) | \(Figure.spread(f.values, unit: f.unit)) | \(f.referenceValues.map { Figure.spread($0, unit: f.unit) } ?? "—") | \(f.ratio.map { Figure.format($0) + "×" } ?? "—") | \(f.target ?? "") | \(status) |"
                )
            }
        }
        func order(_ row: String) -> Int { JobQBench.known.firstIndex(of: String(row.dropFirst(2).prefix { $0 != " " })) ?? 99 }
        rows = rows.enumerated().sorted { (order($0.element), $0.offset) < (order($1.element), $1.offset) }.map(\.element)
        var lines = ["| scenario | figure | measured | reference | ratio | target | |", "|---|---|---|---|---|---|---|"] + rows
        let missed = rows.filter { $0.hasSuffix("| **missed** |") }.count
        lines.append("")
        lines.append(missed == 0 ? "Every target met." : "\(missed) missed: each is open work, with its profile in its scenario's section below.")
        return lines.joined(separator: "\n")
    }

    /// The text between a block's markers, if the file has it.
    static func block(_ name: String, in text: String) -> String? {
        guard let start = text.range(of: "<!-- jobq-bench:\(name) -->"),
            let end = text.range(of: "<!-- /jobq-bench:\(name) -->", range: start.upperBound..<text.endIndex)
        else { return nil }
        return String(text[start.upperBound..<end.lowerBound])
    }

    static func replacing(block name: String, in text: String, with body: String, title: String) -> String {
        let open = "<!-- jobq-bench:\(name) -->"
        let close = "<!-- /jobq-bench:\(name) -->"
        let block = open + "\n" + body + "\n" + close
        if let start = text.range(of: open), let end = text.range(of: close, range: start.upperBound..<text.endIndex) {
            return text.replacingCharacters(in: start.lowerBound..<end.upperBound, with: block)
        }
        return text.trimmingCharacters(in: .newlines) + "\n\n## \(title)\n\n" + block + "\n"
    }
}
