import Foundation
import JobQ
import LocalRedis

/// Scenario `scale-cluster`: a private 3-primary Redis Cluster on loopback; no-op jobs
/// spread evenly over 2 queues per shard on 1, 2 and then 3 shards, drained by the same worker
/// processes (2 × `jobq-worker`, concurrency 32, serving every queue of the round through
/// `redis+cluster://`). Beside the rate: each shard's Redis CPU (cores busy, µs per job it
/// served), so where the ceiling is — one Redis core, or the machine — shows even on 2 cores.
struct ScaleClusterScenario {
    let runs: Int
    let quick: Bool

    static let shardCounts = [1, 2, 3]
    static let processes = 2

    struct Measure {
        var rate: Double
        /// Per shard used: Redis CPU over the drain in cores, and µs of Redis CPU per job served there.
        var shardCores: [Double]
        var shardMicrosPerJob: [Double]
        var workerCores: Double
        var redisCoresTotal: Double { shardCores.reduce(0, +) }
    }

    func run() async throws -> ScenarioReport {
        var report = ScenarioReport("scale-cluster")
        guard let binary = BenchWorker.binary(for: "scale-cluster", report: &report) else { return report }
        let n = quick ? 12_000 : 60_000
        let cluster = try await RedisClusterProcess.start(primaries: 3)
        let client = RedisClient(configuration: cluster.configuration)
        var results: [Int: [Measure]] = [:]
        do {
            let primaries = try await client.primaries()
            guard primaries.count == 3 else { throw BenchError("scale-cluster: the cluster has \(primaries.count) primaries, 3 expected") }
            for run in 0..<runs {
                for shards in Self.shardCounts {
                    let m = try await once(binary: binary, cluster: cluster, client: client, primaries: Array(primaries.prefix(shards)), jobs: n, run: run)
                    results[shards, default: []].append(m)
                    print(
                        "  \(shards) shard\(shards == 1 ? "" : "s"): \(Int(m.rate)) jobs/s, Redis cores per shard \(m.shardCores.map(f2).joined(separator: " / ")), workers \(f2(m.workerCores)) cores"
                    )
                    fflush(nil)
                }
            }
        } catch {
            await client.close()
            await cluster.destroy()
            throw error
        }
        await client.close()
        await cluster.destroy()

        let one = (results[1] ?? []).map(\.rate)
        for shards in Self.shardCounts {
            let m = results[shards] ?? []
            let label = "\(shards) shard\(shards == 1 ? "" : "s")"
            report.add(
                Figure(
                    "drain \(n.formatted()) no-op jobs over \(2 * shards) queues on \(label), \(Self.processes) jobq-worker processes × concurrency 32",
                    m.map(\.rate), unit: "jobs/s",
                    reference: shards == 1 ? nil : "1 shard", referenceValues: shards == 1 ? nil : one))
            for s in 0..<shards {
                report.add(Figure("\(label): shard \(s + 1) Redis busy (cores)", m.map { $0.shardCores[s] }, unit: ""))
                report.add(Figure("\(label): shard \(s + 1) Redis CPU per job it served", m.map { $0.shardMicrosPerJob[s] }, unit: "µs"))
            }
            report.add(Figure("\(label): workers busy (cores, both processes)", m.map(\.workerCores), unit: ""))
        }
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let three = results[3] ?? []
        let busiest = three.map { $0.redisCoresTotal + $0.workerCores }
        let hottestShard = three.map { $0.shardCores.max() ?? 0 }
        report.note(
            "the cluster's 3 primaries, the 2 worker processes and the bench share this machine's \(cores) cores. With 3 shards Redis and the workers together kept \(Figure.format(JobQBenchSupport.median(busiest))) cores busy and the busiest shard \(Figure.format(JobQBenchSupport.median(hottestShard))) of a core: when the machine is full, more shards cannot add throughput here; what they do show is the load spread over the primaries (each shard's CPU per job stays that of one Redis), so on machines with a core per primary the ceiling is one Redis core per shard, not one for all."
        )
        return report
    }

    private func once(binary: String, cluster: RedisClusterProcess, client: RedisClient, primaries: [RedisEndpoint], jobs n: Int, run: Int) async throws
        -> Measure
    {
        // Two queues per shard used, found by where their hash tag lands.
        var names: [RedisEndpoint: [String]] = [:]
        var i = 0
        let tag = UUID().uuidString.prefix(6)
        while primaries.contains(where: { (names[$0]?.count ?? 0) < 2 }), i < 100_000 {
            let name = "bench-cluster-\(primaries.count)-\(run)-\(tag)-\(i)"
            i += 1
            let node = try await client.endpoint(forKey: "jobq:{\(name)}:wait")
            if primaries.contains(node), (names[node]?.count ?? 0) < 2 { names[node, default: []].append(name) }
        }
        let ordered = primaries.flatMap { names[$0] ?? [] }
        guard ordered.count == 2 * primaries.count else { throw BenchError("scale-cluster: no queue names found for every shard") }
        let queues = try ordered.map { try JobQueue(name: $0, client: client) }
        let perQueue = n / queues.count
        for q in queues {
            _ = try await q.inspector.pause()
            var added = 0
            while added < perQueue {
                let count = min(5_000, perQueue - added)
                for r in try await q.addBulk((0..<count).map { _ in JobQueue.NewJob(name: "noop", payload: .json("{}")) }) { _ = try r.get() }
                added += count
            }
        }
        var environment = ["PATH": "/usr/local/bin:/usr/bin:/bin"]
        environment["JOBQ_REDIS_URL"] = cluster.url
        var workers: [ChildProcess] = []
        defer { for w in workers { w.signal(SIGKILL) } }
        for p in 0..<Self.processes {
            workers.append(
                try ChildProcess(
                    executable: binary,
                    arguments: ordered.flatMap { ["--queue", $0] } + [
                        "--handler", "noop=noop", "--concurrency", "32",
                        "--worker-id", "bench-cluster-\(p)", "--log-level", "warning",
                    ],
                    environment: environment))
        }
        let ready = ContinuousClock.now + .seconds(60)
        while try await WorkerInfo.list(client: client).filter({ $0.id.hasPrefix("bench-cluster-") }).count < Self.processes {
            guard ContinuousClock.now < ready else { throw BenchError("scale-cluster: the workers did not all start within 60 s") }
            try await Task.sleep(for: .milliseconds(50))
        }
        let nodes = primaries.map { RedisClient(configuration: cluster.configuration.node($0)) }
        defer { for c in nodes { Task { await c.close() } } }
        var before: [Double] = []
        for c in nodes { before.append(try await ServerStats.fetch(c).cpuSeconds) }
        let workerCPUBefore = workers.map { ScaleScenario.cpuSeconds(of: $0.pid) }.reduce(0, +)
        let t0 = ContinuousClock.now
        for q in queues { _ = try await q.inspector.resume() }
        let deadline = ContinuousClock.now + .seconds(600)
        outer: while true {
            var left = 0
            for q in queues {
                let c = try await q.inspector.counts()
                left += c.waiting + c.active
            }
            if left == 0 { break outer }
            guard ContinuousClock.now < deadline else { throw BenchError("scale-cluster: \(n) jobs not drained in 600 s") }
            try await Task.sleep(for: .milliseconds(20))
        }
        let elapsed = (ContinuousClock.now - t0).seconds
        var after: [Double] = []
        for c in nodes { after.append(try await ServerStats.fetch(c).cpuSeconds) }
        let workerCPU = workers.map { ScaleScenario.cpuSeconds(of: $0.pid) }.reduce(0, +) - workerCPUBefore
        for w in workers { w.signal(SIGTERM) }
        for w in workers { _ = await w.wait() }
        workers = []
        for q in queues { _ = try await q.inspector.obliterate(force: true) }
        let cpu = zip(after, before).map { $0 - $1 }
        let jobsPerShard = Double(perQueue * 2)
        return Measure(
            rate: Double(perQueue * queues.count) / elapsed, shardCores: cpu.map { $0 / elapsed },
            shardMicrosPerJob: cpu.map { $0 * 1e6 / jobsPerShard }, workerCores: workerCPU / elapsed)
    }
}
