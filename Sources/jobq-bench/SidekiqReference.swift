import Foundation
import JobQ

/// Sidekiq measured on the same server: Debian's `ruby-sidekiq` (a Ruby script the bench writes
/// and runs), pushing jobs one at a time (`Sidekiq::Client.push`, what `perform_async` does) or
/// 1,000 per `push_bulk`. Skipped with a note when Ruby or Sidekiq is not installed.
struct SidekiqReference {
    let configuration: RedisConfiguration

    struct Measure: Decodable {
        let n: Int
        let seconds: Double
        let cpuSeconds: Double
        let calls: [String: Int]
        /// Single pushes only: per-push latency, µs.
        let p50Micros: Double
        let p99Micros: Double
        let version: String

        enum CodingKeys: String, CodingKey {
            case n, seconds, calls, version
            case cpuSeconds = "cpu_seconds"
            case p50Micros = "p50_us"
            case p99Micros = "p99_us"
        }
        var rate: Double { Double(n) / seconds }
        var cpuMicrosPerJob: Double { cpuSeconds * 1e6 / Double(n) }
        var callsPerJob: Double { Double(calls.values.reduce(0, +)) / Double(n) }
    }

    static let script = #"""
        require 'json'
        require 'sidekiq'
        Redis.silence_deprecations = true if Redis.respond_to?(:silence_deprecations=)
        url, name, n, mode = ARGV[0], ARGV[1], ARGV[2].to_i, ARGV[3]
        Sidekiq.configure_client { |c| c.redis = { url: url, size: 1 } }
        r = Redis.new(url: url)
        def snap(r)
          cpu = r.info('cpu')
          calls = {}
          r.info('commandstats').each { |k, v| calls[k.sub('cmdstat_', '')] = v['calls'].to_i }
          [cpu['used_cpu_sys'].to_f + cpu['used_cpu_user'].to_f, calls]
        end
        Sidekiq::Client.push('class' => 'BenchJob', 'args' => ['warmup'], 'queue' => name)
        c0, k0 = snap(r)
        lat = []
        t0 = Process.clock_gettime(Process::CLOCK_MONOTONIC)
        if mode == 'bulk'
          args = Array.new(1000) { ['0123456789ab'] }
          (0...n).step(1000) { |s| Sidekiq::Client.push_bulk('class' => 'BenchJob', 'args' => args.first([1000, n - s].min), 'queue' => name) }
        else
          n.times do
            a = Process.clock_gettime(Process::CLOCK_MONOTONIC)
            Sidekiq::Client.push('class' => 'BenchJob', 'args' => ['0123456789ab'], 'queue' => name)
            lat << Process.clock_gettime(Process::CLOCK_MONOTONIC) - a
          end
        end
        elapsed = Process.clock_gettime(Process::CLOCK_MONOTONIC) - t0
        c1, k1 = snap(r)
        calls = {}
        k1.each { |k, v| d = v - (k0[k] || 0); calls[k] = d if d > 0 && k != 'info' }
        lat.sort!
        p50 = lat.empty? ? 0 : lat[lat.size / 2] * 1e6
        p99 = lat.empty? ? 0 : lat[(lat.size * 99) / 100] * 1e6
        puts JSON.generate({ n: n, seconds: elapsed, cpu_seconds: c1 - c0, calls: calls, p50_us: p50, p99_us: p99, version: Sidekiq::VERSION })
        r.del("queue:#{name}")
        r.srem('queues', name)
        """#

    /// `bulk`: `push_bulk` of 1,000 at a time; otherwise one `push` at a time, each awaited.
    func measureAdds(_ n: Int, queue: String, bulk: Bool) async throws -> Measure {
        guard configuration.password == nil, case .tcp(let host, let port) = configuration.endpoint else {
            throw BullMQReference.Unavailable.reason("the Sidekiq reference needs a password-less TCP Redis (the bench's own server is one)")
        }
        guard let ruby = BullMQReference.which("ruby") else {
            throw BullMQReference.Unavailable.reason("ruby not found (apt-get install ruby ruby-sidekiq)")
        }
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("jobq-bench-sidekiq-\(UUID().uuidString).rb").path
        try Self.script.write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let url = "redis://\(host):\(port)/\(configuration.database)"
        let result = await BullMQReference.run(ruby, [file, url, queue, String(n), bulk ? "bulk" : "single"])
        guard result.status == 0, let line = result.output.split(separator: "\n").last(where: { $0.hasPrefix("{") }),
            let measure = try? JSONDecoder().decode(Measure.self, from: Data(line.utf8))
        else {
            throw BullMQReference.Unavailable.reason("the Sidekiq run failed (is ruby-sidekiq installed?): \(result.output.suffix(300))")
        }
        return measure
    }
}
