import Foundation
import JobQ
import LocalRedis

/// BullMQ measured on the same server (`docs/performance.md`): the `bullmq` package from PyPI in a venv
/// the bench creates (`~/.cache/jobq-bench/bullmq-venv`), adding jobs one by one with its Lua
/// scripts (`addStandardJob`). Skipped with a note when Python or PyPI is not available.
struct BullMQReference {
    let configuration: RedisConfiguration

    struct Measure: Decodable {
        let n: Int
        let seconds: Double
        let cpuSeconds: Double
        let calls: [String: Int]

        enum CodingKeys: String, CodingKey {
            case n, seconds, calls
            case cpuSeconds = "cpu_seconds"
        }
        var rate: Double { Double(n) / seconds }
        var cpuMicrosPerJob: Double { cpuSeconds * 1e6 / Double(n) }
        var callsPerJob: Double { Double(calls.values.reduce(0, +)) / Double(n) }
    }

    enum Unavailable: Error, CustomStringConvertible {
        case reason(String)
        var description: String {
            if case .reason(let r) = self { return r }
            return ""
        }
    }

    static let script = #"""
        import asyncio, json, sys, time
        from bullmq import Queue
        import redis.asyncio as aioredis

        def calls_of(info):
            out = {}
            for k, v in info.items():
                if isinstance(v, dict) and "calls" in v:
                    out[k.replace("cmdstat_", "")] = int(v["calls"])
            return out

        async def main():
            url, name, n, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
            q = Queue(name, {"connection": url})
            r = aioredis.from_url(url)
            await q.add("warmup", {"p": "0123456789ab"})
            async def snap():
                cpu = await r.info("cpu")
                return cpu["used_cpu_sys"] + cpu["used_cpu_user"], calls_of(await r.info("commandstats"))
            c0, k0 = await snap()
            t0 = time.perf_counter()
            if mode == "bulk":
                for start in range(0, n, 1000):
                    await q.addBulk([{"name": "bench", "data": {"p": "0123456789ab"}} for _ in range(min(1000, n - start))])
            else:
                for _ in range(n):
                    await q.add("bench", {"p": "0123456789ab"})
            elapsed = time.perf_counter() - t0
            c1, k1 = await snap()
            calls = {k: v - k0.get(k, 0) for k, v in k1.items() if v - k0.get(k, 0) > 0 and k != "info"}
            print(json.dumps({"n": n, "seconds": elapsed, "cpu_seconds": c1 - c0, "calls": calls}))
            await q.obliterate(force=True)
            await q.close()
            await r.aclose()

        asyncio.run(main())
        """#

    static let drainScript = #"""
        import asyncio, json, sys, time
        from bullmq import Queue, Worker
        import redis.asyncio as aioredis

        def calls_of(info):
            out = {}
            for k, v in info.items():
                if isinstance(v, dict) and "calls" in v:
                    out[k.replace("cmdstat_", "")] = int(v["calls"])
            return out

        async def main():
            url, name, n, concurrency = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
            q = Queue(name, {"connection": url})
            r = aioredis.from_url(url)
            for start in range(0, n, 1000):
                await q.addBulk([{"name": "noop", "data": {}, "opts": {"removeOnComplete": 10, "removeOnFail": 5}} for _ in range(min(1000, n - start))])
            async def snap():
                cpu = await r.info("cpu")
                return cpu["used_cpu_sys"] + cpu["used_cpu_user"], calls_of(await r.info("commandstats"))
            async def process(job, token):
                return None
            c0, k0 = await snap()
            t0 = time.perf_counter()
            w = Worker(name, process, {"connection": url, "concurrency": concurrency})
            deadline = t0 + 600
            while time.perf_counter() < deadline:
                counts = await q.getJobCounts("waiting", "active", "prioritized")
                if sum(counts.values()) == 0:
                    break
                await asyncio.sleep(0.02)
            elapsed = time.perf_counter() - t0
            c1, k1 = await snap()
            await w.close()
            calls = {k: v - k0.get(k, 0) for k, v in k1.items() if v - k0.get(k, 0) > 0 and k != "info"}
            print(json.dumps({"n": n, "seconds": elapsed, "cpu_seconds": c1 - c0, "calls": calls}))
            await q.obliterate(force=True)
            await q.close()
            await r.aclose()

        asyncio.run(main())
        """#

    /// BullMQ's Python worker draining `n` pre-added no-op jobs at `concurrency`.
    func measureDrain(_ n: Int, queue: String, concurrency: Int) async throws -> Measure {
        guard configuration.password == nil, case .tcp(let host, let port) = configuration.endpoint else {
            throw Unavailable.reason("the BullMQ reference needs a password-less TCP Redis (the bench's own server is one)")
        }
        let python = try await Self.python()
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("jobq-bench-bullmq-\(UUID().uuidString).py").path
        try Self.drainScript.write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let url = "redis://\(host):\(port)/\(configuration.database)"
        let result = await Self.run(python, [file, url, queue, String(n), String(concurrency)])
        guard result.status == 0, let line = result.output.split(separator: "\n").last(where: { $0.hasPrefix("{") }),
            let measure = try? JSONDecoder().decode(Measure.self, from: Data(line.utf8))
        else {
            throw Unavailable.reason("the BullMQ drain failed: \(result.output.suffix(300))")
        }
        return measure
    }

    /// The venv's python, created on first use.
    static func python() async throws -> String {
        let home = FileManager.default.homeDirectoryForCurrentUser.path
        let dir = "\(home)/.cache/jobq-bench"
        let python = "\(dir)/bullmq-venv/bin/python"
        if FileManager.default.isExecutableFile(atPath: python),
            await run(python, ["-c", "import bullmq"]).status == 0
        {
            return python
        }
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        guard
            let system = ["/usr/bin/python3", "/usr/local/bin/python3"].first(where: { FileManager.default.isExecutableFile(atPath: $0) })
                ?? which("python3")
        else { throw Unavailable.reason("python3 not found") }
        let venv = await run(system, ["-m", "venv", "\(dir)/bullmq-venv"])
        guard venv.status == 0 else { throw Unavailable.reason("python3 -m venv failed: \(venv.output.suffix(200))") }
        let pip = await run("\(dir)/bullmq-venv/bin/pip", ["install", "-q", "bullmq"])
        guard pip.status == 0 else { throw Unavailable.reason("pip install bullmq failed (no PyPI?): \(pip.output.suffix(200))") }
        return python
    }

    /// `bulk`: `Queue.addBulk` in chunks of 1,000 (pipelined); otherwise one `Queue.add` at a time.
    func measureAdds(_ n: Int, queue: String, bulk: Bool = false) async throws -> Measure {
        guard configuration.password == nil, case .tcp(let host, let port) = configuration.endpoint else {
            throw Unavailable.reason("the BullMQ reference needs a password-less TCP Redis (the bench's own server is one)")
        }
        let python = try await Self.python()
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("jobq-bench-bullmq-\(UUID().uuidString).py").path
        try Self.script.write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let url = "redis://\(host):\(port)/\(configuration.database)"
        let result = await Self.run(python, [file, url, queue, String(n), bulk ? "bulk" : "single"])
        guard result.status == 0, let line = result.output.split(separator: "\n").last(where: { $0.hasPrefix("{") }),
            let measure = try? JSONDecoder().decode(Measure.self, from: Data(line.utf8))
        else {
            throw Unavailable.reason("the BullMQ run failed: \(result.output.suffix(300))")
        }
        return measure
    }

    static func run(_ executable: String, _ arguments: [String]) async -> (status: Int32, output: String) {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("jobq-bench-\(UUID().uuidString).txt").path
        defer { try? FileManager.default.removeItem(atPath: output) }
        guard let child = try? ChildProcess(executable: executable, arguments: arguments, environment: ProcessInfo.processInfo.environment, outputPath: output)
        else {
            return (-1, "could not start \(executable)")
        }
        let status = await child.wait()
        return (status, (try? String(contentsOfFile: output, encoding: .utf8)) ?? "")
    }

    /// The installed bullmq's version, from the venv's dist-info ("?" before the first install).
    static func version() -> String {
        let home = FileManager.default.homeDirectoryForCurrentUser.path
        let dir = "\(home)/.cache/jobq-bench/bullmq-venv/lib"
        for python in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] {
            let site = "\(dir)/\(python)/site-packages"
            for entry in (try? FileManager.default.contentsOfDirectory(atPath: site)) ?? [] where entry.hasPrefix("bullmq-") && entry.hasSuffix(".dist-info") {
                return String(entry.dropFirst(7).dropLast(10))
            }
        }
        return "?"
    }

    static func which(_ name: String) -> String? {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
            let path = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }
}
