import ArgumentParser
import Foundation
import JobQ
import LocalRedis

/// Runs `redis-benchmark` against the same server: the reference every figure is a ratio to.
struct RedisBenchmarkTool {
    let path: String
    let configuration: RedisConfiguration

    struct Result {
        var rps: Double
        var p50Ms: Double
        var p99Ms: Double
    }

    /// `SET` at the given concurrency and pipeline depth; requests per second.
    func rps(clients: Int, pipeline: Int, requests: Int) async throws -> Double {
        try await run(clients: clients, pipeline: pipeline, requests: requests, command: ["-t", "set"]).rps
    }

    /// Any command (`__rand_int__` in an argument becomes a random 12-digit number, drawn anew
    /// for each occurrence), with its rate and latency percentiles from `--csv`.
    func run(clients: Int, pipeline: Int, requests: Int, command: [String], randomKeyspace: Int? = nil) async throws -> Result {
        var args: [String]
        switch configuration.endpoint {
        case .tcp(let host, let port): args = ["-h", host, "-p", String(port)]
        case .unix(let socket): args = ["-s", socket]
        }
        args += ["-c", String(clients), "-n", String(requests), "-P", String(pipeline), "--csv"]
        if let randomKeyspace { args += ["-r", String(randomKeyspace)] }
        if let user = configuration.username { args += ["--user", user] }
        args += command
        var environment = ProcessInfo.processInfo.environment
        if let password = configuration.password { environment["REDISCLI_AUTH"] = password }
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("jobq-bench-\(UUID().uuidString).txt").path
        defer { try? FileManager.default.removeItem(atPath: output) }
        let child = try ChildProcess(executable: path, arguments: args, environment: environment, outputPath: output)
        _ = await child.wait()
        let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
        for line in text.split(whereSeparator: { $0 == "\n" || $0 == "\r" }).reversed() {
            let cells = Self.csvCells(String(line))
            if cells.count == 8, cells[0] != "test", let rps = Double(cells[1]), let p50 = Double(cells[4]), let p99 = Double(cells[6]) {
                return Result(rps: rps, p50Ms: p50, p99Ms: p99)
            }
        }
        throw ValidationError("could not read redis-benchmark output: \(text.suffix(300))")
    }

    /// Splits a CSV line of quoted cells (commas inside quotes kept).
    static func csvCells(_ line: String) -> [String] {
        var cells: [String] = []
        var current = ""
        var quoted = false
        for ch in line {
            if ch == "\"" {
                quoted.toggle()
            } else if ch == ",", !quoted {
                cells.append(current)
                current = ""
            } else {
                current.append(ch)
            }
        }
        cells.append(current)
        return cells
    }
}

/// Server-side costs from `INFO`: CPU seconds, commands executed (by name), memory.
struct ServerStats {
    var cpuSeconds: Double
    var calls: [String: Int]
    var usedMemory: Int

    static func fetch(_ client: RedisClient) async throws -> ServerStats {
        let replies = try await client.pipeline([RedisCommand("INFO", "cpu"), RedisCommand("INFO", "commandstats"), RedisCommand("INFO", "memory")])
        func fields(_ reply: RedisReply) -> [(String, String)] {
            (reply.string ?? "").split(whereSeparator: \.isNewline).compactMap { line in
                guard let colon = line.firstIndex(of: ":") else { return nil }
                return (String(line.prefix(upTo: colon)), String(line.suffix(from: colon).dropFirst()))
            }
        }
        var cpu = 0.0
        for (k, v) in fields(replies[0]) where k == "used_cpu_sys" || k == "used_cpu_user" { cpu += Double(v) ?? 0 }
        var calls: [String: Int] = [:]
        for (k, v) in fields(replies[1]) where k.hasPrefix("cmdstat_") {
            // calls=12,usec=34,…
            if let c = v.split(separator: ",").first(where: { $0.hasPrefix("calls=") }), let n = Int(c.dropFirst(6)) {
                calls[String(k.dropFirst(8))] = n
            }
        }
        let memory = fields(replies[2]).first { $0.0 == "used_memory" }.flatMap { Int($0.1) } ?? 0
        return ServerStats(cpuSeconds: cpu, calls: calls, usedMemory: memory)
    }

    /// Commands run between two readings, by name (the `INFO` calls themselves left out).
    static func callsBetween(_ a: ServerStats, _ b: ServerStats) -> [String: Int] {
        var out: [String: Int] = [:]
        for (name, n) in b.calls where name != "info" {
            let d = n - (a.calls[name] ?? 0)
            if d > 0 { out[name] = d }
        }
        return out
    }
}
