import Synchronization

/// The connection to Redis that queues, workers and inspectors are made with: a small pool of
/// connections, each on its own thread (a connection per primary in a cluster; the primary the
/// sentinels name in Sentinel mode).
///
/// For a user of `JobQ` it is a handle: make it from a ``RedisConfiguration``, share it, check it
/// with ``ping()``, and ``close()`` it (or scope it with ``withClient(configuration:_:)``). The
/// commands are `package` API for the rest of jobq: concurrent callers are pipelined
/// automatically (whatever is queued on a connection when it is free goes out in one write), and
/// explicit pipelines send their commands together, in order, on one connection.
///
/// - Important: no call blocks the calling task's thread; hiredis runs only on the connection
///   threads. Error replies come back as `RedisReply.error` values; connection failures are
///   thrown (see ``RedisError``).
public final class RedisClient: Sendable {
    public let configuration: RedisConfiguration
    private let loops: [RedisConnectionLoop]
    /// Cluster mode (`redis+cluster://`): one connection per primary, commands routed by slot.
    package let cluster: RedisClusterRouter?
    /// Sentinel mode: listens to the sentinels' `+switch-master` and moves the pool to the new
    /// primary before a write meets the old one.
    private let sentinelWatch: RedisSubscriber?

    /// Creates the pool. Nothing runs yet: each connection's thread starts with its first command
    /// (in Sentinel mode, the watch on the sentinels with the first command too), and
    /// ``close()`` joins every thread started. ``withClient(configuration:_:)`` scopes both.
    public init(configuration: RedisConfiguration) {
        self.configuration = configuration
        if configuration.isCluster {
            self.cluster = RedisClusterRouter(configuration: configuration)
            self.loops = []
            self.sentinelWatch = nil
            return
        }
        self.cluster = nil
        let count = max(1, configuration.connectionCount)
        let loops = (0..<count).map { i in
            RedisConnectionLoop(configuration: configuration, replyTimeout: configuration.commandTimeout, label: "jobq-redis-\(i)")
        }
        self.loops = loops
        guard let sentinel = configuration.sentinel, !sentinel.nodes.isEmpty else {
            self.sentinelWatch = nil
            return
        }
        var watchConfiguration = RedisConfiguration(endpoint: sentinel.nodes[0], username: sentinel.username, password: sentinel.password)
        watchConfiguration.connectTimeout = min(configuration.connectTimeout, .seconds(2))
        watchConfiguration.backoff = configuration.backoff
        watchConfiguration.retryDeadline = configuration.retryDeadline
        let name = sentinel.masterName
        let watch = RedisSubscriber(configuration: watchConfiguration, alternates: sentinel.nodes) { event in
            switch event {
            case .message(_, let payload):
                if RedisSentinelResolver.isSwitch(of: name, payload: payload) { for loop in loops { loop.reconnectSoon() } }
            case .resubscribed:
                // Away from the sentinels for a while: a switch may have been missed.
                for loop in loops { loop.reconnectSoon() }
            }
        }
        self.sentinelWatch = watch
    }

    /// A client for the duration of `body`, closed (every thread it started joined) when `body`
    /// returns or throws.
    public static func withClient<T>(
        configuration: RedisConfiguration, _ body: (RedisClient) async throws -> T
    ) async rethrows -> T {
        let client = RedisClient(configuration: configuration)
        do {
            let result = try await body(client)
            await client.close()
            return result
        } catch {
            await client.close()
            throw error
        }
    }

    /// Subscribes to `channels` (returns once the server confirmed every one) for the duration
    /// of `body`, which reads the messages from the stream it is given; the subscription's
    /// connection and thread are closed and joined when `body` returns or throws.
    ///
    /// ```swift
    /// try await client.withSubscription(to: ["news"]) { events in
    ///     for await event in events { … }
    /// }
    /// ```
    /// - Throws: what ``RedisSubscriber/subscribe(_:)`` throws, or what `body` throws.
    package func withSubscription<T>(
        to channels: [String], _ body: (AsyncStream<RedisSubscriber.Event>) async throws -> T
    ) async throws -> T {
        let subscriber = RedisSubscriber(configuration: configuration)
        do {
            try await subscriber.subscribe(channels)
            let result = try await body(subscriber.events)
            await subscriber.close()
            return result
        } catch {
            await subscriber.close()
            throw error
        }
    }

    private let sentinelWatchStarted = Atomic<Bool>(false)

    /// Starts listening for `+switch-master` with the first command (not at init).
    private func startSentinelWatch() {
        guard let sentinelWatch, !sentinelWatchStarted.load(ordering: .relaxed),
            !sentinelWatchStarted.exchange(true, ordering: .acquiringAndReleasing)
        else { return }
        sentinelWatch.want(["+switch-master"])
    }

    /// Sends one command.
    /// - Parameter idempotent: when true and the connection dies with the command on the wire, it
    ///   is resent after the reconnect instead of failing with `outcomeUnknown`.
    package func send(_ command: RedisCommand, idempotent: Bool = false) async throws(RedisError) -> RedisReply {
        if let cluster { return try await cluster.execute([.command(command)], idempotent: idempotent)[0] }
        return try await pickLoop().submit(one: .command(command), idempotent: idempotent).get()
    }

    /// Sends one command given as name and arguments: `try await client.send("GET", key)`.
    package func send(_ name: String, _ arguments: any RedisArgument...) async throws(RedisError) -> RedisReply {
        try await send(RedisCommand(name, arguments: arguments))
    }

    /// Sends the commands in one flight, in order, on one connection; one reply per command.
    package func pipeline(_ commands: [RedisCommand], idempotent: Bool = false) async throws(RedisError) -> [RedisReply] {
        guard !commands.isEmpty else { return [] }
        if let cluster { return try await cluster.execute(commands.map { .command($0) }, idempotent: idempotent) }
        return try await pickLoop().submit(commands.map { .command($0) }, idempotent: idempotent).get()
    }

    /// Runs a script by `EVALSHA` (falling back to `EVAL` on `NOSCRIPT`).
    package func run(_ script: RedisScript, keys: [any RedisArgument], arguments: [any RedisArgument], idempotent: Bool = false) async throws(RedisError)
        -> RedisReply
    {
        try await execute(RedisBatch().script(script, keys: keys, arguments: arguments), idempotent: idempotent)[0]
    }

    /// Sends a batch of commands and script calls in one flight, in order; one reply per item.
    package func execute(_ batch: RedisBatch, idempotent: Bool = false) async throws(RedisError) -> [RedisReply] {
        guard !batch.items.isEmpty else { return [] }
        if let problem = batch.problem { throw problem }
        if let cluster { return try await cluster.execute(batch.items, idempotent: idempotent) }
        return try await pickLoop().submit(batch.items, idempotent: idempotent).get()
    }

    /// Loads scripts on every connection now and after every reconnect, so later `EVALSHA`
    /// pipelines do not meet `NOSCRIPT`. Throws if a script does not compile.
    package func load(_ scripts: [RedisScript]) async throws(RedisError) {
        guard !scripts.isEmpty else { return }
        if let cluster { return try await cluster.load(scripts) }
        for loop in loops {
            let replies = try await loop.submit(scripts.map { .command(RedisCommand("SCRIPT", "LOAD", $0.source)) }, idempotent: true).get()
            for (script, reply) in zip(scripts, replies) {
                if let message = reply.errorMessage {
                    throw RedisError(.serverError, endpoint: configuration.displayEndpoint, detail: "\(script.name) does not load: \(message)")
                }
                if let sha = reply.string { script.learn(sha: sha) }
            }
            loop.register(scripts)
        }
    }

    /// `PING`, as a liveness probe. Throws when Redis is not reachable.
    public func ping() async throws(RedisError) {
        let reply = try await send(RedisCommand("PING"), idempotent: true)
        if let message = reply.errorMessage {
            throw RedisError(.serverError, endpoint: configuration.displayEndpoint, detail: message)
        }
    }

    /// The last connection failure, if a connection is down right now.
    public var connectionProblem: RedisError? { cluster?.connectionProblem ?? loops.lazy.compactMap(\.connectionProblem).first }

    /// Closes every connection; queued commands fail with `closed`.
    public func close() async {
        await sentinelWatch?.close()
        await cluster?.close()
        for loop in loops { await loop.close() }
    }

    /// The node a key lives on: the configured server, or in cluster mode the primary owning the
    /// key's slot (for connections that must sit on that node: blocking waits, sharded pub/sub).
    package func endpoint(forKey key: String) async throws(RedisError) -> RedisEndpoint {
        guard let cluster else { return configuration.endpoint }
        return try await cluster.node(forSlot: RedisClusterSlot.of(key))
    }

    /// Every primary (the one server when not in cluster mode).
    package func primaries() async throws(RedisError) -> [RedisEndpoint] {
        guard let cluster else { return [configuration.endpoint] }
        if cluster.primaries.isEmpty { try await cluster.refresh() }
        return cluster.primaries
    }

    /// Each pooled connection's thread: started, ended (tests of the client's lifetime).
    var threadStates: [(started: Bool, exited: Bool)] { loops.map(\.threadState) }

    private func pickLoop() -> RedisConnectionLoop {
        if sentinelWatch != nil { startSentinelWatch() }
        if loops.count == 1 { return loops[0] }
        var best = loops[0]
        var bestLoad = best.load.load(ordering: .relaxed)
        for loop in loops.dropFirst() where bestLoad > 0 {
            let l = loop.load.load(ordering: .relaxed)
            if l < bestLoad {
                best = loop
                bestLoad = l
            }
        }
        return best
    }
}

/// Commands and script calls to send together, in order.
package struct RedisBatch: Sendable {
    var items: [RedisConnectionLoop.Item] = []
    var problem: RedisError?

    package init() {}

    package var count: Int { items.count }

    package mutating func append(_ command: RedisCommand) {
        items.append(.command(command))
    }

    /// Adds a script call. A key count that does not match ``RedisScript/keyCount`` is a
    /// programming error, reported when the batch is executed.
    package mutating func append(_ script: RedisScript, keys: [any RedisArgument], arguments: [any RedisArgument]) {
        if let expected = script.keyCount, expected != keys.count, problem == nil {
            problem = RedisError(.serverError, endpoint: nil, detail: "\(script.name) takes \(expected) keys, \(keys.count) given (a bug in jobq)")
        }
        var tail = RedisCommand()
        tail.append(keys.count)
        tail.append(contentsOf: keys)
        tail.append(contentsOf: arguments)
        items.append(.script(script, tail))
    }

    /// Chaining form of ``append(_:keys:arguments:)``.
    package func script(_ script: RedisScript, keys: [any RedisArgument], arguments: [any RedisArgument]) -> RedisBatch {
        var copy = self
        copy.append(script, keys: keys, arguments: arguments)
        return copy
    }
}
