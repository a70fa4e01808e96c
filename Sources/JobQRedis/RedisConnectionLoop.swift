internal import CHiredis
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// One Redis connection on its own thread, fed by a queue that any task may submit to.
///
/// Each turn the thread takes **everything queued** (up to ``maxFlight`` commands) and sends it as
/// one pipeline, then reads the replies in order. Sequential callers get one round trip each;
/// concurrent callers share round trips, which is where the speed is (`docs/client.md`: the async hop
/// costs 15–25 µs, a pipelined command ~1 µs of server time).
///
/// Failure handling (`docs/client.md`), all on this thread:
/// - connection lost before a command was sent → it waits for the reconnect and is sent then;
/// - connection lost after sending → `outcomeUnknown`, except idempotent requests, which are resent;
/// - `BUSY`, `LOADING`, `TRYAGAIN`, `CLUSTERDOWN`, `MASTERDOWN` → resent after a backoff until the
///   request's deadline, then `unavailable`; `READONLY` → reconnect, then resent;
/// - `NOSCRIPT` on `EVALSHA` → resent once as `EVAL`;
/// - reconnects use capped exponential backoff with jitter; after each, known scripts are reloaded.
///
/// - Important: the hiredis calls happen only on this loop's thread, never on Swift's cooperative
///   pool. Submitting is a short critical section and never blocks on I/O.
package final class RedisConnectionLoop: @unchecked Sendable {
    /// What one request asks for; a request is answered when all its items are.
    package enum Item: Sendable {
        case command(RedisCommand)
        /// `script` with `arguments` = numkeys, keys…, args… (everything after the SHA).
        case script(RedisScript, RedisCommand)
    }

    /// Confined to the loop thread once submitted. One-command requests (the common case) carry
    /// no arrays, and the waiting task's continuation is stored as is: no closure per command.
    final class Request {
        enum Waiter {
            case one(UnsafeContinuation<Result<RedisReply, RedisError>, Never>)
            case many(UnsafeContinuation<Result<[RedisReply], RedisError>, Never>)
            case done
        }

        private let single: Item?
        private let items: [Item]
        private var replies: [RedisReply]
        private var singleReply: RedisReply = .null
        var remaining: Int
        let idempotent: Bool
        let wakeable: Bool
        let deadline: ContinuousClock.Instant
        private var waiter: Waiter

        init(
            one item: Item, idempotent: Bool, wakeable: Bool, deadline: ContinuousClock.Instant,
            continuation: UnsafeContinuation<Result<RedisReply, RedisError>, Never>
        ) {
            self.single = item
            self.items = []
            self.replies = []
            self.remaining = 1
            self.idempotent = idempotent
            self.wakeable = wakeable
            self.deadline = deadline
            self.waiter = .one(continuation)
        }

        init(
            many items: [Item], idempotent: Bool, wakeable: Bool, deadline: ContinuousClock.Instant,
            continuation: UnsafeContinuation<Result<[RedisReply], RedisError>, Never>
        ) {
            self.single = nil
            self.items = items
            self.replies = Array(repeating: .null, count: items.count)
            self.remaining = items.count
            self.idempotent = idempotent
            self.wakeable = wakeable
            self.deadline = deadline
            self.waiter = .many(continuation)
        }

        var count: Int { single == nil ? items.count : 1 }
        func item(_ i: Int) -> Item { single ?? items[i] }
        var isDone: Bool { if case .done = waiter { return true } else { return false } }

        /// Stores reply `i`; true when that was the last one outstanding.
        func store(_ reply: RedisReply, at i: Int) -> Bool {
            if single != nil { singleReply = reply } else { replies[i] = reply }
            remaining -= 1
            return remaining == 0
        }

        /// Resumes the waiting task (with the replies, or `error`). Only the first call counts.
        func complete(_ error: RedisError?) -> Bool {
            switch waiter {
            case .done:
                return false
            case .one(let c):
                waiter = .done
                c.resume(returning: error.map { .failure($0) } ?? .success(singleReply))
            case .many(let c):
                waiter = .done
                c.resume(returning: error.map { .failure($0) } ?? .success(replies))
            }
            return true
        }
    }

    struct Queued {
        let request: Request
        let index: Int
        var forceEval = false
        var retries = 0
        var notBefore: ContinuousClock.Instant?
    }

    private enum FlightEntry {
        case user(Queued, sentAsEvalSHA: Bool)
        case learnSHA(RedisScript)
        case skipped
    }

    /// At most this many commands go in one write; the rest follow in the next flight.
    static let maxFlight = 4096
    /// After a flight the thread does not sleep at once: it yields the CPU (`sched_yield`) while
    /// watching the queue, for at most this long. The callers it just answered usually submit
    /// again within microseconds; picking them up this way saves a futex sleep and wake-up per
    /// round trip, and each yield gives the core to anyone runnable.
    static let idleWatch: Duration = .microseconds(60)
    /// While fewer commands are queued than the last flight answered, the thread waits up to this
    /// long for the rest, so that N concurrent callers keep sharing one round trip instead of
    /// trickling out in small flights. A lone sequential caller expects 1 and never waits.
    static let gatherWindow: Duration = .microseconds(40)

    let configuration: RedisConfiguration
    let label: String
    /// Requests submitted and not yet answered (for picking the least-loaded connection).
    let load = Atomic<Int>(0)

    // Shared state, guarded by `lock`.
    private let lock = ConditionLock()
    private var pending: [Queued] = []
    /// `pending.count`, readable without the lock while spinning.
    private let pendingHint = Atomic<Int>(0)
    private var closing = false
    private var started = false
    private var threadWaiting = false
    private var exited = false
    private var exitWaiters: [@Sendable () -> Void] = []
    private var registeredScripts: [RedisScript] = []
    /// Scripts this connection has loaded (`SCRIPT LOAD`) since it connected. The loop thread's
    /// own: a script not in it goes out with its `SCRIPT LOAD` first in the flight, so the
    /// `EVALSHA`s after it never meet `NOSCRIPT` on a server that has not seen the script yet —
    /// a `NOSCRIPT` is resent after the rest of its flight, out of order.
    private var loadedHere: Set<ObjectIdentifier> = []
    private var sharedClientID: Int64 = 0
    private var wakeableInFlight = false
    private var wakeRequested = false
    private var flightNumber: UInt64 = 0
    private var lastConnectionError: RedisError?

    // Loop-thread state.
    private let connection: RedisConnection
    private var backlog: [Queued] = []
    private var reconnects: ReconnectSchedule
    private let policy: RedisRetryPolicy
    private var everConnected = false
    /// Commands answered by the last flight: how many to expect back soon.
    private var lastFlightSize = 0
    private var onReconnect: (@Sendable () -> Void)?

    init(configuration: RedisConfiguration, replyTimeout: Duration, label: String) {
        self.configuration = configuration
        self.label = label
        self.connection = RedisConnection(configuration: configuration, replyTimeout: replyTimeout)
        self.reconnects = ReconnectSchedule(backoff: configuration.backoff)
        self.policy = RedisRetryPolicy(backoff: configuration.backoff, endpoint: configuration.displayEndpoint)
    }

    /// Starts the thread, once, with the first request (nothing runs at init); ``close()`` joins
    /// it. Called with `lock` held.
    private func startIfNeeded() {
        guard !started else { return }
        started = true
        let thread = Thread { [self] in self.run() }
        thread.name = label
        thread.start()
    }

    // MARK: Submitting (any thread or task)

    /// Sends one command or script call; resumes when its reply is in.
    func submit(one item: Item, idempotent: Bool, wakeable: Bool = false) async -> Result<RedisReply, RedisError> {
        await withUnsafeContinuation { continuation in
            enqueue(
                Request(
                    one: item, idempotent: idempotent, wakeable: wakeable,
                    deadline: .now + configuration.retryDeadline, continuation: continuation))
        }
    }

    /// Sends the items in one flight, in order; resumes when every reply is in.
    func submit(_ items: [Item], idempotent: Bool, wakeable: Bool = false) async -> Result<[RedisReply], RedisError> {
        await withUnsafeContinuation { continuation in
            enqueue(
                Request(
                    many: items, idempotent: idempotent, wakeable: wakeable,
                    deadline: .now + configuration.retryDeadline, continuation: continuation))
        }
    }

    private func enqueue(_ request: Request) {
        lock.lock()
        if closing {
            lock.unlock()
            _ = request.complete(RedisError(.closed, endpoint: configuration.displayEndpoint, detail: "client closed"))
            return
        }
        load.add(1, ordering: .relaxed)
        startIfNeeded()
        for i in 0..<request.count { pending.append(Queued(request: request, index: i)) }
        pendingHint.store(pending.count, ordering: .relaxed)
        let wake = threadWaiting
        lock.unlock()
        if wake { lock.signal() }
    }

    /// Scripts to (re)load with `SCRIPT LOAD` after every connect.
    func register(_ scripts: [RedisScript]) {
        lock.withLock {
            for s in scripts where !registeredScripts.contains(where: { $0 === s }) { registeredScripts.append(s) }
        }
    }

    /// Whether the thread has started, and whether it has ended (tests of the client's lifetime).
    var threadState: (started: Bool, exited: Bool) { lock.withLock { (started, exited) } }

    /// `CLIENT ID` of the current connection (0 while disconnected).
    var clientID: Int64 { lock.withLock { sharedClientID } }

    /// The last connection failure, if the loop is currently disconnected.
    var connectionProblem: RedisError? { lock.withLock { lastConnectionError } }

    /// Makes the loop drop its connection before the next flight and connect again — in Sentinel
    /// mode asking the sentinels where the primary is now (after `+switch-master`).
    func reconnectSoon() {
        reconnectWanted.store(true, ordering: .relaxed)
    }
    private let reconnectWanted = Atomic<Bool>(false)

    /// Runs on the loop thread after each reconnect (not the first connect).
    func setReconnectHandler(_ handler: @escaping @Sendable () -> Void) {
        lock.withLock { onReconnect = handler }
    }

    /// Asks the in-flight or next wakeable request to return `.null` at once. Returns the client id
    /// to `CLIENT UNBLOCK` and the flight number when a wakeable request is on the wire now.
    func requestWake() -> (clientID: Int64, flight: UInt64)? {
        lock.withLock {
            wakeRequested = true
            return wakeableInFlight ? (sharedClientID, flightNumber) : nil
        }
    }

    /// True while flight `flight` (a wakeable one) is still on the wire and a wake is still wanted.
    func stillBlocked(flight: UInt64) -> Bool {
        lock.withLock { wakeableInFlight && flightNumber == flight && wakeRequested }
    }

    /// Stops the thread: queued requests fail with `closed`, the socket is closed.
    func close() async {
        await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
            lock.lock()
            closing = true
            if exited || !started {
                exited = true
                lock.unlock()
                continuation.resume()
                return
            }
            exitWaiters.append { continuation.resume() }
            lock.unlock()
            lock.broadcast()
        }
    }

    // MARK: The loop thread

    private func run() {
        CHiredis_nameThread(String(label.prefix(15)))
        while true {
            if backlog.isEmpty { watchForWork() }
            lock.lock()
            while pending.isEmpty && backlog.isEmpty && !closing {
                threadWaiting = true
                lock.wait()
                threadWaiting = false
            }
            if closing {
                let rest = pending
                pending = []
                lock.unlock()
                let error = RedisError(.closed, endpoint: configuration.displayEndpoint, detail: "client closed before the command was sent")
                for q in backlog + rest { finish(q.request, error) }
                backlog = []
                connection.close()
                lock.lock()
                exited = true
                let waiters = exitWaiters
                exitWaiters = []
                lock.unlock()
                for w in waiters { w() }
                return
            }
            if !pending.isEmpty {
                if backlog.isEmpty {
                    swap(&backlog, &pending)
                } else {
                    backlog.append(contentsOf: pending)
                    pending.removeAll(keepingCapacity: true)
                }
                pendingHint.store(0, ordering: .relaxed)
            }
            lock.unlock()

            backlog.removeAll { $0.request.isDone }
            if backlog.isEmpty { continue }

            guard ensureConnected() else { continue }
            waitForRetryTime()
            if closingRequested { continue }
            runFlight()
        }
    }

    private var closingRequested: Bool { lock.withLock { closing } }

    /// Yields the CPU while watching for submissions: returns once as many commands as the last
    /// flight answered are queued, once some are queued and the gather window has passed, or
    /// once the idle watch is over (then the caller sleeps on the condition variable).
    private func watchForWork() {
        let expected = max(1, lastFlightSize)
        let start = ContinuousClock.now
        while true {
            let queued = pendingHint.load(ordering: .relaxed)
            if queued >= expected { return }
            let waited = ContinuousClock.now - start
            if queued > 0 && waited >= Self.gatherWindow { return }
            if waited >= Self.idleWatch { return }
            sched_yield()
        }
    }

    /// Connects if needed. On failure fails what is past its deadline (or everything, for errors
    /// that waiting cannot fix) and waits for the next attempt; returns false then.
    private func ensureConnected() -> Bool {
        if reconnectWanted.load(ordering: .relaxed) {
            reconnectWanted.store(false, ordering: .relaxed)
            connection.close()
        }
        if connection.isConnected {
            // Nothing is in flight between flights, so a readable socket means the server closed
            // it (CLIENT KILL, timeout, restart): reconnect rather than write into it.
            if !connection.idleSocketLooksClosed { return true }
            connection.close()
        }
        if !reconnects.isDue(.now) {
            sleep(until: reconnects.nextAttempt)
            return false
        }
        do {
            try connection.connect()
            loadedHere = []
            try reloadScripts()
            let handler: (@Sendable () -> Void)?
            lock.lock()
            sharedClientID = connection.clientID
            lastConnectionError = nil
            handler = onReconnect
            lock.unlock()
            if everConnected { handler?() }
            everConnected = true
            return true
        } catch {
            connection.close()
            lock.withLock {
                sharedClientID = 0
                lastConnectionError = error
            }
            switch policy.decideConnectFailure(error) {
            case .failAll(let error):
                // Waiting will not fix a wrong password: fail what is queued now, try again when
                // the next request comes.
                let failing = backlog
                backlog = []
                for q in failing { finish(q.request, error) }
            case .failExpired(let unavailable):
                let now = ContinuousClock.now
                let expired = backlog.filter { $0.request.deadline <= now }
                backlog.removeAll { $0.request.deadline <= now }
                for q in expired { finish(q.request, unavailable) }
                reconnects.failed(now: .now)
            }
            return false
        }
    }

    private func reloadScripts() throws(RedisError) {
        let scripts = lock.withLock { registeredScripts }
        guard !scripts.isEmpty else { return }
        for s in scripts { connection.append(RedisCommand("SCRIPT", "LOAD", s.source)) }
        for s in scripts {
            let reply = try connection.readReply()
            if let sha = reply.string, reply.errorMessage == nil {
                s.learn(sha: sha)
                loadedHere.insert(ObjectIdentifier(s))
            }
        }
    }

    /// Sleeps until `instant` unless the client closes first.
    private func sleep(until instant: ContinuousClock.Instant) {
        lock.lock()
        while !closing {
            let left = instant - ContinuousClock.now
            if left <= .zero { break }
            lock.wait(for: left)
        }
        lock.unlock()
    }

    /// A retried command (after `BUSY` and friends) waits for its backoff before going out again.
    private func waitForRetryTime() {
        guard let first = backlog.first, let notBefore = first.notBefore else { return }
        sleep(until: notBefore)
    }

    private func runFlight() {
        let count = min(backlog.count, Self.maxFlight)
        var flight: [FlightEntry] = []
        flight.reserveCapacity(count)
        var hasWakeable = false
        let skipWake = lock.withLock { () -> Bool in
            let wanted = wakeRequested
            if wanted, backlog.prefix(count).contains(where: { $0.request.wakeable }) {
                wakeRequested = false
                return true
            }
            return false
        }
        var learning: [RedisScript] = []
        for q in backlog.prefix(count) {
            if q.request.wakeable {
                if skipWake {
                    flight.append(.skipped)
                    deliver(q, .null)
                    continue
                }
                hasWakeable = true
            }
            switch q.request.item(q.index) {
            case .command(let command):
                connection.append(command)
                flight.append(.user(q, sentAsEvalSHA: false))
            case .script(let script, let arguments):
                if script.sha != nil, !loadedHere.contains(ObjectIdentifier(script)), !learning.contains(where: { $0 === script }) {
                    // Known elsewhere, not yet here: load it ahead of its first EVALSHA.
                    learning.append(script)
                    loadedHere.insert(ObjectIdentifier(script))
                    connection.append(RedisCommand("SCRIPT", "LOAD", script.source))
                    flight.append(.learnSHA(script))
                }
                if let sha = script.sha, !q.forceEval {
                    connection.append(prefix: [Array("EVALSHA".utf8), Array(sha.utf8)], arguments)
                    flight.append(.user(q, sentAsEvalSHA: true))
                } else {
                    // SCRIPT LOAD goes first, so the SHA is known by the time the caller resumes.
                    if script.sha == nil, !learning.contains(where: { $0 === script }) {
                        learning.append(script)
                        loadedHere.insert(ObjectIdentifier(script))
                        connection.append(RedisCommand("SCRIPT", "LOAD", script.source))
                        flight.append(.learnSHA(script))
                    }
                    connection.append(prefix: [Array("EVAL".utf8), Array(script.source.utf8)], arguments)
                    flight.append(.user(q, sentAsEvalSHA: false))
                }
            }
        }
        backlog.removeFirst(count)
        lastFlightSize = count
        if !learning.isEmpty { register(learning) }
        if hasWakeable {
            lock.withLock {
                flightNumber &+= 1
                wakeableInFlight = true
            }
        }
        defer {
            if hasWakeable {
                lock.withLock {
                    wakeableInFlight = false
                    wakeRequested = false
                }
            }
        }

        var requeue: [Queued] = []
        var reconnectAfter = false
        if case .notSent(let error) = connection.writeAll() {
            // The socket died before a byte of this flight left: nothing ran, send it all again
            // on the next connection (the reconnect applies the backoff).
            connection.close()
            lock.withLock { lastConnectionError = error }
            for entry in flight {
                if case .user(var q, _) = entry, !q.request.isDone {
                    q.retries += 1
                    requeue.append(q)
                }
            }
            backlog.insert(contentsOf: requeue, at: 0)
            reconnects.failed(now: .now)
            return
        }
        for (position, entry) in flight.enumerated() {
            if case .skipped = entry { continue }
            let reply: RedisReply
            do {
                reply = try connection.readReply()
            } catch {
                // The connection died with these commands on the wire.
                connection.close()
                reconnects.failed(now: .now)
                lock.withLock { lastConnectionError = error }
                for rest in flight[position...] {
                    guard case .user(var q, _) = rest, !q.request.isDone else { continue }
                    switch policy.decideLost(idempotent: q.request.idempotent, deadline: q.request.deadline, now: .now, error: error) {
                    case .resend:
                        q.retries += 1
                        requeue.append(q)
                    case .fail(let error):
                        finish(q.request, error)
                    }
                }
                break
            }
            reconnects.succeeded()  // a reply came back: the connection works
            switch entry {
            case .skipped:
                continue
            case .learnSHA(let script):
                if let sha = reply.string, reply.errorMessage == nil { script.learn(sha: sha) }
            case .user(var q, let sentAsEvalSHA):
                guard !q.request.isDone else { continue }
                // Cheap for the common case: only error replies need a decision.
                guard case .error = reply else {
                    deliver(q, reply)
                    continue
                }
                switch policy.decide(reply, sentAsEvalSHA: sentAsEvalSHA, retries: q.retries, deadline: q.request.deadline, now: .now) {
                case .deliver, .redirect:
                    deliver(q, reply)
                case .resendAsEval:
                    q.forceEval = true
                    requeue.append(q)
                case .retry(let notBefore):
                    q.notBefore = notBefore
                    q.retries += 1
                    requeue.append(q)
                case .reconnectThenResend:
                    // Not at once: the sentinels may still name the demoted server for a moment.
                    reconnectAfter = true
                    q.retries += 1
                    requeue.append(q)
                case .fail(let error):
                    finish(q.request, error)
                }
            }
        }
        if reconnectAfter {
            // Not at once: the sentinels may still name the demoted server for a moment.
            connection.close()
            reconnects.failed(now: .now)
        }
        if !requeue.isEmpty { backlog.insert(contentsOf: requeue, at: 0) }
    }

    private func deliver(_ q: Queued, _ reply: RedisReply) {
        let request = q.request
        guard !request.isDone else { return }
        if request.store(reply, at: q.index) { finish(request, nil) }
    }

    private func finish(_ request: Request, _ error: RedisError?) {
        if request.complete(error) { load.subtract(1, ordering: .relaxed) }
    }
}
