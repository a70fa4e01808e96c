internal import CHiredis
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A pub/sub connection on its own thread, delivering messages as an `AsyncSequence`.
///
/// It resubscribes by itself after a reconnect (with backoff) and then yields
/// ``Event/resubscribed(_:)``: messages published while it was away are lost (that is pub/sub),
/// so a consumer re-checks durable state at that point (`docs/job-lifecycle.md`).
///
/// The thread waits with `poll(2)` on the socket and on a wake-up pipe, so subscribing, unsubscribing
/// and closing from any task take effect at once; an idle connection is checked with `PING`.
package final class RedisSubscriber: Sendable {
    package enum Event: Sendable, Hashable {
        case message(channel: String, payload: [UInt8])
        /// The connection was re-established and every channel is subscribed again.
        case resubscribed([String])
    }

    /// Every message, in order of arrival. Finishes when the subscriber is closed. Empty when
    /// events go to an `onEvent` handler instead.
    package let events: AsyncStream<Event>
    private let state: SubscriberThread

    /// - Parameter onEvent: when given, every event is handed to it on the subscriber's own
    ///   thread, in order, instead of through ``events`` — no hop to the cooperative pool (the
    ///   worker fires cancellation tokens this way). It must return quickly and never block.
    package init(configuration: RedisConfiguration, onEvent: (@Sendable (Event) -> Void)? = nil) {
        let (stream, continuation) = AsyncStream.makeStream(of: Event.self, bufferingPolicy: .unbounded)
        self.events = stream
        let deliver: @Sendable (Event) -> Void = onEvent ?? { continuation.yield($0) }
        self.state = SubscriberThread(
            configuration: configuration, alternates: configuration.clusterSeeds ?? [],
            continuation: continuation, deliver: deliver)
    }

    /// A subscriber that moves to the next of `alternates` whenever connecting fails (the
    /// sentinels, for `+switch-master`).
    init(configuration: RedisConfiguration, alternates: [RedisEndpoint], onEvent: @escaping @Sendable (Event) -> Void) {
        let (stream, continuation) = AsyncStream.makeStream(of: Event.self, bufferingPolicy: .unbounded)
        self.events = stream
        self.state = SubscriberThread(configuration: configuration, alternates: alternates, continuation: continuation, deliver: onEvent)
    }

    /// Sharded pub/sub (`SSUBSCRIBE`, Redis Cluster): the channels (all in one slot) are heard on
    /// the node owning their slot. Before each connect `locate` names that node (the client's
    /// slot map); `onTrouble` runs when the map looks stale — the node is gone, it answered
    /// `MOVED`, or it dropped the subscription because the slot moved — so the map is re-read.
    package init(
        shardedOn configuration: RedisConfiguration, locate: @escaping @Sendable () -> RedisEndpoint?,
        onTrouble: @escaping @Sendable () -> Void, onEvent: @escaping @Sendable (Event) -> Void
    ) {
        let (stream, continuation) = AsyncStream.makeStream(of: Event.self, bufferingPolicy: .unbounded)
        self.events = stream
        self.state = SubscriberThread(
            configuration: configuration, alternates: [], continuation: continuation, deliver: onEvent,
            sharded: .init(locate: locate, onTrouble: onTrouble))
    }

    /// Subscribes and returns once the server has confirmed every channel.
    /// - Throws: `unavailable` when no connection could be made within the retry deadline,
    ///   `authFailed`, or `closed`. The channels stay wanted: they are subscribed when the
    ///   connection comes back.
    package func subscribe(_ channels: [String]) async throws(RedisError) {
        guard !channels.isEmpty else { return }
        let result: Result<Void, RedisError> = await withUnsafeContinuation { continuation in
            state.enqueue(.subscribe(channels, { continuation.resume(returning: $0) }))
        }
        try result.get()
    }

    /// Subscribes without waiting for the server's confirmation (the subscription is made, and
    /// remade after every reconnect, on the subscriber's thread).
    func want(_ channels: [String]) {
        guard !channels.isEmpty else { return }
        state.enqueue(.subscribe(channels, { _ in }))
    }

    /// Stops listening to the channels (takes effect promptly; no confirmation awaited).
    package func unsubscribe(_ channels: [String]) {
        guard !channels.isEmpty else { return }
        state.enqueue(.unsubscribe(channels))
    }

    /// Closes the connection and finishes ``events``.
    package func close() async {
        await state.close()
    }
}

/// The thread behind a ``RedisSubscriber``.
private final class SubscriberThread: @unchecked Sendable {
    enum Op {
        case subscribe([String], @Sendable (Result<Void, RedisError>) -> Void)
        case unsubscribe([String])
    }

    struct Waiter {
        var channels: Set<String>
        let deadline: ContinuousClock.Instant
        let completion: @Sendable (Result<Void, RedisError>) -> Void
    }

    private let configuration: RedisConfiguration
    private let continuation: AsyncStream<RedisSubscriber.Event>.Continuation
    private let wakeRead: Int32
    private let wakeWrite: Int32

    // Shared, guarded by `lock`.
    private let lock = ConditionLock()
    private var ops: [Op] = []
    private var closing = false
    /// The thread starts with the first subscription, not at init; ``close()`` joins it.
    private var started = false
    private var exited = false
    private var exitWaiters: [@Sendable () -> Void] = []

    // Thread-confined.
    /// Confined to the subscriber thread after init. In cluster mode it is replaced by one to the
    /// next seed node when connecting fails (PUBLISH reaches every node of a cluster, so any node
    /// hears every message).
    private var connection: RedisConnection
    private var seedIndex = 0
    /// The node the connection is (or will be) made to.
    private var node: RedisEndpoint
    /// Nodes to rotate over when connecting fails: cluster seeds, or sentinels.
    private let alternates: [RedisEndpoint]
    private var wanted: Set<String> = []
    /// Sent on the current connection, not yet confirmed.
    private var pending: Set<String> = []
    /// Confirmed on the current connection.
    private var acked: Set<String> = []
    private var waiters: [Waiter] = []
    private var announceResubscribe = false
    private var everConnected = false
    private var reconnects: ReconnectSchedule
    private let policy: RedisRetryPolicy
    private var pingSent: ContinuousClock.Instant?

    static let idlePing: Duration = .seconds(10)

    private let deliver: @Sendable (RedisSubscriber.Event) -> Void

    struct Sharding {
        let locate: @Sendable () -> RedisEndpoint?
        let onTrouble: @Sendable () -> Void
    }
    private let sharding: Sharding?
    private var subscribeCommand: String { sharding == nil ? "SUBSCRIBE" : "SSUBSCRIBE" }

    init(
        configuration: RedisConfiguration, alternates: [RedisEndpoint], continuation: AsyncStream<RedisSubscriber.Event>.Continuation,
        deliver: @escaping @Sendable (RedisSubscriber.Event) -> Void, sharded: Sharding? = nil
    ) {
        self.deliver = deliver
        self.configuration = configuration
        self.alternates = alternates
        self.sharding = sharded
        self.node = configuration.endpoint
        self.continuation = continuation
        self.reconnects = ReconnectSchedule(backoff: configuration.backoff)
        self.policy = RedisRetryPolicy(backoff: configuration.backoff, endpoint: configuration.displayEndpoint)
        // Replies on a subscribed connection arrive whenever: reads never time out; liveness is
        // checked with PING instead.
        self.connection = RedisConnection(configuration: configuration.node(configuration.endpoint), replyTimeout: configuration.commandTimeout)
        var fds: [Int32] = [-1, -1]
        let ok = CHiredis_makeWakePipe(&fds)
        precondition(ok == 0, "cannot create a pipe for the subscriber: errno \(errno)")
        wakeRead = fds[0]
        wakeWrite = fds[1]
    }

    deinit {
        Glibc.close(wakeRead)
        Glibc.close(wakeWrite)
    }

    func enqueue(_ op: Op) {
        lock.lock()
        if closing {
            lock.unlock()
            if case .subscribe(_, let completion) = op {
                completion(.failure(RedisError(.closed, endpoint: configuration.displayEndpoint, detail: "subscriber closed")))
            }
            return
        }
        ops.append(op)
        let start = !started
        started = true
        lock.unlock()
        if start {
            let thread = Thread { [self] in self.run() }
            thread.name = "jobq-redis-subscriber"
            thread.start()
        }
        poke()
    }

    func close() async {
        await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
            lock.lock()
            closing = true
            if exited || !started {
                // Never started: nothing to join.
                exited = true
                lock.unlock()
                self.continuation.finish()
                continuation.resume()
                return
            }
            exitWaiters.append { continuation.resume() }
            lock.unlock()
            poke()
        }
    }

    private func poke() {
        var byte: UInt8 = 1
        _ = Glibc.write(wakeWrite, &byte, 1)
    }

    private func drainWakePipe() {
        var buffer = [UInt8](repeating: 0, count: 64)
        while Glibc.read(wakeRead, &buffer, buffer.count) > 0 {}
    }

    // MARK: Thread

    private func run() {
        CHiredis_nameThread("jobq-redis-sub")
        while true {
            lock.lock()
            let isClosing = closing
            let newOps = ops
            ops = []
            lock.unlock()
            if isClosing { break }

            for op in newOps { apply(op) }
            expireWaiters()

            if !connection.isConnected {
                if !connectIfDue() {
                    waitForWake(timeout: reconnects.nextAttempt - .now)
                    continue
                }
            }
            // Send whatever was queued (SUBSCRIBE/UNSUBSCRIBE/PING).
            if !connection.flush() {
                lost()
                continue
            }
            // Replies already buffered by hiredis first, then wait for more.
            if !drainBuffered() { continue }

            let timeout = pollTimeout()
            let ready = connection.waitReadable(wakeFD: wakeRead, timeoutMs: timeout)
            if ready == 1 {
                if !connection.readAvailable() {
                    lost()
                    continue
                }
                pingSent = nil
                _ = drainBuffered()
            } else if ready == 2 {
                drainWakePipe()
            } else if ready == 0 {
                checkIdle()
            }
        }
        connection.close()
        let closed = RedisError(.closed, endpoint: configuration.displayEndpoint, detail: "subscriber closed")
        for w in waiters { w.completion(.failure(closed)) }
        waiters = []
        lock.lock()
        for op in ops { if case .subscribe(_, let c) = op { c(.failure(closed)) } }
        ops = []
        exited = true
        let exits = exitWaiters
        exitWaiters = []
        lock.unlock()
        continuation.finish()
        for e in exits { e() }
    }

    private func apply(_ op: Op) {
        switch op {
        case .subscribe(let channels, let completion):
            wanted.formUnion(channels)
            let wantedSet = Set(channels)
            if wantedSet.isSubset(of: acked) {
                completion(.success(()))
                return
            }
            waiters.append(Waiter(channels: wantedSet, deadline: .now + configuration.retryDeadline, completion: completion))
            let toSend = wantedSet.subtracting(acked).subtracting(pending)
            if connection.isConnected && !toSend.isEmpty {
                pending.formUnion(toSend)
                connection.append(RedisCommand(subscribeCommand, arguments: toSend.sorted()))
            }
        case .unsubscribe(let channels):
            let present = channels.filter { wanted.contains($0) }
            wanted.subtract(present)
            acked.subtract(present)
            pending.subtract(present)
            if connection.isConnected && !present.isEmpty {
                connection.append(RedisCommand(sharding == nil ? "UNSUBSCRIBE" : "SUNSUBSCRIBE", arguments: present))
            }
        }
    }

    private func connectIfDue() -> Bool {
        guard reconnects.isDue(.now) else { return false }
        if let sharding, let owner = sharding.locate(), owner != node {
            node = owner
            connection = RedisConnection(configuration: configuration.node(owner), replyTimeout: configuration.commandTimeout)
        }
        do {
            try connection.connect()
        } catch {
            sharding?.onTrouble()
            if case .failAll(let error) = policy.decideConnectFailure(error) {
                for w in waiters { w.completion(.failure(error)) }
                waiters = []
            }
            reconnects.failed(now: .now)
            lastError = error
            if alternates.count > 1 {
                seedIndex = (seedIndex + 1) % alternates.count
                connection = RedisConnection(configuration: configuration.node(alternates[seedIndex]), replyTimeout: configuration.commandTimeout)
            }
            return false
        }
        reconnects.succeeded()
        pingSent = nil
        acked = []
        pending = wanted
        if !wanted.isEmpty {
            connection.append(RedisCommand(subscribeCommand, arguments: wanted.sorted()))
            announceResubscribe = everConnected
        }
        everConnected = true
        return true
    }

    private var lastError: RedisError?

    private func lost() {
        connection.close()
        acked = []
        pending = []
        reconnects.failed(now: .now)
    }

    /// Handles every complete reply hiredis has buffered. False if the connection failed.
    private func drainBuffered() -> Bool {
        while true {
            let reply: RedisReply?
            do {
                reply = try connection.bufferedReply()
            } catch {
                lost()
                return false
            }
            guard let reply else { return true }
            handle(reply)
            if !connection.isConnected { return false }  // the reply made us drop the connection
        }
    }

    private func handle(_ reply: RedisReply) {
        if reply.errorMessage != nil, let sharding {
            // SSUBSCRIBE answered MOVED (or CLUSTERDOWN): the slot is elsewhere; re-read the map
            // and subscribe on its owner.
            lastError = RedisError(.serverError, endpoint: node.description, detail: reply.errorMessage ?? "")
            sharding.onTrouble()
            lost()
            return
        }
        guard let items = reply.array, let kind = items.first?.string else { return }
        switch kind {
        case "message", "smessage":
            guard items.count == 3, let channel = items[1].string else { return }
            deliver(.message(channel: channel, payload: items[2].bytes ?? []))
        case "sunsubscribe":
            // Unasked (the slot moved away from this node): subscribe again where it went.
            guard items.count >= 2, let channel = items[1].string, wanted.contains(channel), let sharding else { return }
            sharding.onTrouble()
            lost()
        case "subscribe", "ssubscribe":
            guard items.count >= 2, let channel = items[1].string else { return }
            pending.remove(channel)
            guard wanted.contains(channel) else { return }
            acked.insert(channel)
            var done: [Waiter] = []
            waiters.removeAll { w in
                if w.channels.isSubset(of: acked) {
                    done.append(w)
                    return true
                }
                return false
            }
            for w in done { w.completion(.success(())) }
            if pending.isEmpty && announceResubscribe {
                announceResubscribe = false
                deliver(.resubscribed(wanted.sorted()))
            }
        default:
            break
        }
    }

    private func expireWaiters() {
        guard !waiters.isEmpty else { return }
        let now = ContinuousClock.now
        var expired: [Waiter] = []
        waiters.removeAll { w in
            if w.deadline <= now {
                expired.append(w)
                return true
            }
            return false
        }
        for w in expired {
            let detail = lastError.map { "no subscription within the retry deadline; last error: \($0.detail)" } ?? "no subscription within the retry deadline"
            w.completion(.failure(RedisError(.unavailable, endpoint: configuration.displayEndpoint, detail: detail)))
        }
    }

    private func pollTimeout() -> Int32 {
        var timeout = Self.idlePing
        if !waiters.isEmpty { timeout = min(timeout, .seconds(1)) }
        if let sent = pingSent { timeout = min(timeout, max(.milliseconds(1), sent + Self.idlePing - .now)) }
        return Int32(timeout.milliseconds)
    }

    /// No traffic for a while: send a PING; no answer to the last PING in time: reconnect.
    private func checkIdle() {
        if let sent = pingSent {
            if ContinuousClock.now - sent >= Self.idlePing { lost() }
            return
        }
        pingSent = .now
        connection.append(RedisCommand("PING"))
    }

    private func waitForWake(timeout: Duration) {
        let ms = Int32(max(1, min(timeout.milliseconds, 1000)))
        if CHiredis_waitReadable(-1, wakeRead, ms) == 2 { drainWakePipe() }
    }
}
