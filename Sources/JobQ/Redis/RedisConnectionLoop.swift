import Foundation
import Synchronization

/// One Redis connection on its own thread, fed by a queue that any task may submit to.
///
/// Each turn the thread takes **everything queued** (up to ``maxFlight`` commands) and sends it as
/// one pipeline, then reads the replies in order. Sequential callers get one round trip each;
/// concurrent callers share round trips, which is where the speed is (HIREDIS-NOTES: the async hop
/// costs 15–25 µs, a pipelined command ~1 µs of server time).
///
/// Failure handling (DESIGN §7), all on this thread:
/// - connection lost before a command was sent → it waits for the reconnect and is sent then;
/// - connection lost after sending → `outcomeUnknown`, except idempotent requests, which are resent;
/// - `BUSY`, `LOADING`, `TRYAGAIN`, `CLUSTERDOWN`, `MASTERDOWN` → resent after a backoff until the
///   request's deadline, then `unavailable`; `READONLY` → reconnect, then resent;
/// - `NOSCRIPT` on `EVALSHA` → resent once as `EVAL`;
/// - reconnects use capped exponential backoff with jitter; after each, known scripts are reloaded.
///
/// - Important: the hiredis calls happen only on this loop's thread, never on Swift's cooperative
///   pool. Submitting is a short critical section and never blocks on I/O.
final class RedisConnectionLoop: @unchecked Sendable {
    /// What one request asks for; a request is answered when all its items are.
    enum Item: Sendable {
        case command(RedisCommand)
        /// `script` with `arguments` = numkeys, keys…, args… (everything after the SHA).
        case script(RedisScript, RedisCommand)
    }

    typealias Completion = @Sendable (Result<[RedisReply], RedisError>) -> Void

    /// Confined to the loop thread once submitted.
    final class Request {
        let items: [Item]
        var replies: [RedisReply]
        var remaining: Int
        let idempotent: Bool
        let wakeable: Bool
        let deadline: ContinuousClock.Instant
        var completion: Completion?

        init(items: [Item], idempotent: Bool, wakeable: Bool, deadline: ContinuousClock.Instant, completion: @escaping Completion) {
            self.items = items
            self.replies = Array(repeating: .null, count: items.count)
            self.remaining = items.count
            self.idempotent = idempotent
            self.wakeable = wakeable
            self.deadline = deadline
            self.completion = completion
        }

        var isDone: Bool { completion == nil }
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
    /// A connection idle this long is checked for a server-side close before it is written to.
    static let idleCheckAfter: Duration = .milliseconds(20)

    let configuration: RedisConfiguration
    let label: String
    /// Requests submitted and not yet answered (for picking the least-loaded connection).
    let load = Atomic<Int>(0)

    // Shared state, guarded by `lock`.
    private let lock = ConditionLock()
    private var pending: [Queued] = []
    private var closing = false
    private var threadWaiting = false
    private var exited = false
    private var exitWaiters: [@Sendable () -> Void] = []
    private var registeredScripts: [RedisScript] = []
    private var sharedClientID: Int64 = 0
    private var wakeableInFlight = false
    private var wakeRequested = false
    private var flightNumber: UInt64 = 0
    private var lastConnectionError: RedisError?

    // Loop-thread state.
    private let connection: RedisConnection
    private var backlog: [Queued] = []
    private var reconnectAttempt = 0
    private var nextConnectAttempt = ContinuousClock.now
    private var everConnected = false
    private var onReconnect: (@Sendable () -> Void)?

    init(configuration: RedisConfiguration, replyTimeout: Duration, label: String) {
        self.configuration = configuration
        self.label = label
        self.connection = RedisConnection(configuration: configuration, replyTimeout: replyTimeout)
        let thread = Thread { [self] in self.run() }
        thread.name = label
        thread.start()
    }

    // MARK: Submitting (any thread or task)

    /// Queues a request; `completion` runs on the loop thread, exactly once.
    func submit(_ items: [Item], idempotent: Bool, wakeable: Bool = false, completion: @escaping Completion) {
        let request = Request(items: items, idempotent: idempotent, wakeable: wakeable,
                              deadline: .now + configuration.retryDeadline, completion: completion)
        lock.lock()
        if closing {
            lock.unlock()
            completion(.failure(RedisError(.closed, endpoint: configuration.displayEndpoint, detail: "client closed")))
            return
        }
        load.add(1, ordering: .relaxed)
        for i in items.indices { pending.append(Queued(request: request, index: i)) }
        let wake = threadWaiting
        lock.unlock()
        if wake { lock.signal() }
    }

    func submit(_ items: [Item], idempotent: Bool, wakeable: Bool = false) async -> Result<[RedisReply], RedisError> {
        await withUnsafeContinuation { continuation in
            submit(items, idempotent: idempotent, wakeable: wakeable) { continuation.resume(returning: $0) }
        }
    }

    /// Scripts to (re)load with `SCRIPT LOAD` after every connect.
    func register(_ scripts: [RedisScript]) {
        lock.withLock {
            for s in scripts where !registeredScripts.contains(where: { $0 === s }) { registeredScripts.append(s) }
        }
    }

    /// `CLIENT ID` of the current connection (0 while disconnected).
    var clientID: Int64 { lock.withLock { sharedClientID } }

    /// The last connection failure, if the loop is currently disconnected.
    var connectionProblem: RedisError? { lock.withLock { lastConnectionError } }

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
            if exited {
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
        while true {
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
                for q in backlog + rest { finish(q.request, .failure(error)) }
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
                if backlog.isEmpty { swap(&backlog, &pending) } else { backlog.append(contentsOf: pending); pending.removeAll(keepingCapacity: true) }
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

    /// Connects if needed. On failure fails what is past its deadline (or everything, for errors
    /// that waiting cannot fix) and waits for the next attempt; returns false then.
    private func ensureConnected() -> Bool {
        if connection.isConnected {
            if ContinuousClock.now - connection.lastActivity < Self.idleCheckAfter || !connection.idleSocketLooksClosed {
                return true
            }
            connection.close()
        }
        let now = ContinuousClock.now
        if now < nextConnectAttempt {
            sleep(until: nextConnectAttempt)
            return false
        }
        do {
            try connection.connect()
            try reloadScripts()
            reconnectAttempt = 0
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
            if error.code == .authFailed || error.code == .invalidURL {
                // Waiting will not fix a wrong password: fail what is queued now, try again when
                // the next request comes.
                let failing = backlog
                backlog = []
                for q in failing { finish(q.request, .failure(error)) }
                return false
            }
            let now = ContinuousClock.now
            let expired = backlog.filter { $0.request.deadline <= now }
            backlog.removeAll { $0.request.deadline <= now }
            let unavailable = RedisError(.unavailable, endpoint: error.endpoint, detail: "no connection within the retry deadline; last error: \(error.detail)")
            for q in expired { finish(q.request, .failure(unavailable)) }
            nextConnectAttempt = now + configuration.backoff.delay(attempt: reconnectAttempt)
            reconnectAttempt += 1
            return false
        }
    }

    private func reloadScripts() throws(RedisError) {
        let scripts = lock.withLock { registeredScripts }
        guard !scripts.isEmpty else { return }
        for s in scripts { connection.append(RedisCommand("SCRIPT", "LOAD", s.source)) }
        for s in scripts {
            let reply = try connection.readReply()
            if let sha = reply.string, reply.errorMessage == nil { s.learn(sha: sha) }
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
            if wanted, backlog.prefix(count).contains(where: { $0.request.wakeable }) { wakeRequested = false; return true }
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
            switch q.request.items[q.index] {
            case .command(let command):
                connection.append(command)
                flight.append(.user(q, sentAsEvalSHA: false))
            case .script(let script, let arguments):
                if let sha = script.sha, !q.forceEval {
                    connection.append(prefix: [Array("EVALSHA".utf8), Array(sha.utf8)], arguments)
                    flight.append(.user(q, sentAsEvalSHA: true))
                } else {
                    connection.append(prefix: [Array("EVAL".utf8), Array(script.source.utf8)], arguments)
                    flight.append(.user(q, sentAsEvalSHA: false))
                    if script.sha == nil, !learning.contains(where: { $0 === script }) {
                        learning.append(script)
                        connection.append(RedisCommand("SCRIPT", "LOAD", script.source))
                        flight.append(.learnSHA(script))
                    }
                }
            }
        }
        backlog.removeFirst(count)
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
        for (position, entry) in flight.enumerated() {
            if case .skipped = entry { continue }
            let reply: RedisReply
            do {
                reply = try connection.readReply()
            } catch {
                // The connection died with these commands on the wire.
                connection.close()
                lock.withLock { lastConnectionError = error }
                for rest in flight[position...] {
                    guard case .user(var q, _) = rest, !q.request.isDone else { continue }
                    if q.request.idempotent && ContinuousClock.now < q.request.deadline {
                        q.retries += 1
                        requeue.append(q)
                    } else {
                        finish(q.request, .failure(error))
                    }
                }
                break
            }
            switch entry {
            case .skipped:
                continue
            case .learnSHA(let script):
                if let sha = reply.string, reply.errorMessage == nil { script.learn(sha: sha) }
            case .user(var q, let sentAsEvalSHA):
                guard !q.request.isDone else { continue }
                if let code = reply.errorCode {
                    switch code {
                    case "NOSCRIPT" where sentAsEvalSHA:
                        q.forceEval = true
                        requeue.append(q)
                        continue
                    case "BUSY", "LOADING", "TRYAGAIN", "CLUSTERDOWN", "MASTERDOWN":
                        let now = ContinuousClock.now
                        if now < q.request.deadline {
                            q.notBefore = now + configuration.backoff.delay(attempt: q.retries)
                            q.retries += 1
                            requeue.append(q)
                        } else {
                            finish(q.request, .failure(RedisError(.unavailable, endpoint: configuration.displayEndpoint,
                                                                  detail: "server still answering \(RedisConnection.firstLine(reply.errorMessage ?? "")) at the retry deadline")))
                        }
                        continue
                    case "READONLY":
                        if ContinuousClock.now < q.request.deadline {
                            reconnectAfter = true
                            q.retries += 1
                            requeue.append(q)
                            continue
                        }
                    default:
                        break
                    }
                }
                deliver(q, reply)
            }
        }
        if reconnectAfter { connection.close() }
        if !requeue.isEmpty { backlog.insert(contentsOf: requeue, at: 0) }
    }

    private func deliver(_ q: Queued, _ reply: RedisReply) {
        let request = q.request
        guard !request.isDone else { return }
        request.replies[q.index] = reply
        request.remaining -= 1
        if request.remaining == 0 { finish(request, .success(request.replies)) }
    }

    private func finish(_ request: Request, _ result: Result<[RedisReply], RedisError>) {
        guard let completion = request.completion else { return }
        request.completion = nil
        load.subtract(1, ordering: .relaxed)
        completion(result)
    }
}
