import ArgumentParser
import Foundation
import JobQ
import LocalRedis

/// `jobq-demo`: until the queue demo lands, a tour of the Redis client layer against a private
/// `redis-server` it starts itself (or `$JOBQ_REDIS_URL`): round trips, binary payloads,
/// pipelines, concurrent callers, scripts, pub/sub and a woken blocking pop, with timings.
@main
struct JobQDemo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jobq-demo",
        abstract: "Smoke-test the jobq Redis client against a private redis-server (or $JOBQ_REDIS_URL)."
    )

    func run() async throws {
        let server: RedisServerProcess?
        let configuration: RedisConfiguration
        if let url = ProcessInfo.processInfo.environment["JOBQ_REDIS_URL"], !url.isEmpty {
            server = nil
            configuration = try RedisConfiguration.commandLine(urlFlag: nil, passwordFile: nil)
            print("using Redis at \(configuration.redactedURL) (JOBQ_REDIS_URL); keys under jobq-demo:*")
        } else {
            let started = try await RedisServerProcess.start(.init(transport: .tcp))
            server = started
            configuration = started.configuration
            print("started a private redis-server (pid \(started.pid ?? 0)) at \(started.url)")
        }
        // Stop the private server on Ctrl-C / SIGTERM too.
        let stopper = SignalStopper(server: server)
        defer { stopper.cancel() }

        var failures = 0
        let client = RedisClient(configuration: configuration)
        let prefix = "jobq-demo:\(UUID().uuidString.prefix(8))"
        func check(_ title: String, _ body: () async throws -> String) async {
            let start = ContinuousClock.now
            do {
                let detail = try await body()
                print("  ok    \(title.padding(toLength: 44, withPad: " ", startingAt: 0)) \(format(ContinuousClock.now - start))  \(detail)")
            } catch {
                failures += 1
                print("  FAIL  \(title): \(error)")
            }
        }

        print("checks:")
        await check("PING + server facts") {
            try await client.ping()
            let info = try await RedisServerInfo.fetch(from: client)
            return "redis \(info.version), AOF \(info.aofEnabled ? "on" : "off"), \(info.maxmemoryPolicy)"
        }
        await check("binary value with NUL bytes (64 KiB)") {
            var value = [UInt8](repeating: 0, count: 65_536)
            for i in value.indices { value[i] = UInt8(truncatingIfNeeded: i &* 31) }
            _ = try await client.send("SET", "\(prefix):bin", value)
            guard try await client.send("GET", "\(prefix):bin") == .bulk(value) else { throw DemoError("value changed") }
            return "round-trip identical"
        }
        await check("1,000 sequential SETs") {
            let start = ContinuousClock.now
            for i in 0..<1_000 { _ = try await client.send("SET", "\(prefix):seq", i) }
            return rate(1_000, ContinuousClock.now - start)
        }
        await check("pipeline of 10,000 RPUSH") {
            let start = ContinuousClock.now
            let replies = try await client.pipeline((0..<10_000).map { RedisCommand("RPUSH", "\(prefix):list", $0) })
            guard replies.last == .integer(10_000) else { throw DemoError("unexpected reply \(replies.last!)") }
            return rate(10_000, ContinuousClock.now - start)
        }
        await check("32 concurrent callers x 500 SETs") {
            let start = ContinuousClock.now
            try await withThrowingTaskGroup(of: Void.self) { group in
                for t in 0..<32 {
                    group.addTask { for i in 0..<500 { _ = try await client.send("SET", "\(prefix):c\(t)", i) } }
                }
                try await group.waitForAll()
            }
            return rate(16_000, ContinuousClock.now - start) + " (auto-pipelined on one connection)"
        }
        await check("Lua script by EVALSHA") {
            let script = RedisScript(name: "demo-1", source: "return redis.call('LLEN', KEYS[1])", keyCount: 1)
            try await client.load([script])
            let reply = try await client.run(script, keys: ["\(prefix):list"], arguments: [])
            return "LLEN = \(reply.int ?? -1), sha \(script.sha?.prefix(12) ?? "?")…"
        }
        await check("pub/sub round trip") {
            let subscriber = RedisSubscriber(configuration: configuration)
            defer { Task { await subscriber.close() } }
            try await subscriber.subscribe(["\(prefix):chan"])
            var iterator = subscriber.events.makeAsyncIterator()
            let start = ContinuousClock.now
            let listeners = try await client.send("PUBLISH", "\(prefix):chan", "hello").int ?? 0
            guard case .message(_, let payload)? = await iterator.next(), payload == Array("hello".utf8) else { throw DemoError("no message") }
            return "\(listeners) listener, delivered in \(format(ContinuousClock.now - start))"
        }
        await check("blocking pop woken early (block 5 s)") {
            let blocking = RedisBlockingClient(configuration: configuration, control: client)
            defer { Task { await blocking.close() } }
            _ = try await blocking.send(RedisCommand("PING"))
            let start = ContinuousClock.now
            async let popped = blocking.send(RedisCommand("BLPOP", "\(prefix):empty", 5))
            while try await client.send("CLIENT", "LIST", "ID", blocking.clientID).string?.contains("cmd=blpop") != true {
                try await Task.sleep(for: .milliseconds(2))
            }
            blocking.wake()
            guard try await popped == .null else { throw DemoError("expected a timeout reply") }
            return "returned after \(format(ContinuousClock.now - start))"
        }

        let keys = try await client.send("KEYS", "\(prefix):*").array ?? []
        if !keys.isEmpty { _ = try await client.send(RedisCommand("DEL", arguments: keys.compactMap(\.bytes))) }
        await client.close()
        if let server {
            await server.destroy()
            print("stopped the private redis-server")
        }
        print(failures == 0 ? "all checks passed" : "\(failures) check(s) failed")
        if failures > 0 { throw ExitCode.failure }
    }
}

struct DemoError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

func format(_ d: Duration) -> String {
    let ms = Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15
    return ms < 10 ? String(format: "%6.2f ms", ms) : String(format: "%6.0f ms", ms)
}

func rate(_ count: Int, _ d: Duration) -> String {
    let s = Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    return String(format: "%.0f/s", Double(count) / max(s, 1e-9))
}

/// Stops the private server and exits when SIGINT or SIGTERM arrives.
final class SignalStopper {
    private let sources: [any DispatchSourceSignal]

    init(server: RedisServerProcess?) {
        var sources: [any DispatchSourceSignal] = []
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler {
                Task {
                    if let server { await server.destroy() }
                    print("\ninterrupted: stopped the private redis-server")
                    Foundation.exit(130)
                }
            }
            source.resume()
            sources.append(source)
        }
        self.sources = sources
    }

    func cancel() { for s in sources { s.cancel() } }
}
