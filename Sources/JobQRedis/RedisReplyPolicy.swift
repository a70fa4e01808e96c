/// What a reply from Redis means for the command it answers, as data. Every connection kind —
/// pooled commands, the cluster router, blocking waits, subscriptions — classifies replies here,
/// so the list of server states jobq waits out is written once (`docs/client.md`).
enum RedisReplyKind: Equatable, Sendable {
    /// A value or an error reply for the caller (`WRONGTYPE`, a script's own error…).
    case answer
    /// `NOSCRIPT`: the server does not know the script's SHA (a restart, `SCRIPT FLUSH`).
    case noScript
    /// The server cannot run it now but will soon: `BUSY` (a long script), `LOADING` (a restart
    /// reading its data), `TRYAGAIN` (a multi-key command during a slot migration),
    /// `CLUSTERDOWN`, `MASTERDOWN` (a replica cut from its primary).
    case notNow(String)
    /// `READONLY`: a replica answered (after a failover, or a wrong address).
    case readOnly
    /// `MOVED <slot> <host:port>`: the slot lives on another node now.
    case moved(slot: Int, to: RedisEndpoint)
    /// `ASK <slot> <host:port>`: this one command goes to the importing node, after `ASKING`.
    case ask(slot: Int, to: RedisEndpoint)

    init(_ reply: RedisReply) {
        guard let code = reply.errorCode else {
            self = .answer
            return
        }
        switch code {
        case "NOSCRIPT": self = .noScript
        case "BUSY", "LOADING", "TRYAGAIN", "CLUSTERDOWN", "MASTERDOWN": self = .notNow(String(code))
        case "READONLY": self = .readOnly
        case "MOVED", "ASK":
            guard let (slot, endpoint) = Self.redirect(reply.errorMessage ?? "") else {
                self = .answer
                return
            }
            self = code == "MOVED" ? .moved(slot: slot, to: endpoint) : .ask(slot: slot, to: endpoint)
        default: self = .answer
        }
    }

    /// `MOVED 3999 127.0.0.1:6381` / `ASK 3999 [::1]:6381` → (slot, endpoint).
    static func redirect(_ message: String) -> (Int, RedisEndpoint)? {
        let parts = message.split(separator: " ")
        guard parts.count >= 3, let slot = Int(parts[1]), (0..<RedisClusterSlot.count).contains(slot),
            let colon = parts[2].lastIndex(of: ":"), let port = Int(parts[2][parts[2].index(after: colon)...]), (1...65535).contains(port)
        else { return nil }
        var host = String(parts[2][..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { return nil }
        return (slot, .tcp(host: host, port: port))
    }
}

/// The decisions a connection makes for the commands it carries, as pure functions of the reply
/// or failure, the command's retries and deadline, and the clock: a connection's thread applies
/// them, and unit tests drive them without a server.
struct RedisRetryPolicy: Sendable {
    var backoff: RetryBackoff
    /// Where errors say they happened.
    var endpoint: String?

    /// What to do with one command's reply.
    enum Decision: Equatable, Sendable {
        /// Hand the reply to the caller.
        case deliver
        /// `NOSCRIPT` on `EVALSHA`: send it again as `EVAL` (which also loads the script).
        case resendAsEval
        /// Send it again, not before `notBefore`.
        case retry(notBefore: ContinuousClock.Instant)
        /// Drop the connection (reconnecting re-resolves the primary where that is possible),
        /// then send it again.
        case reconnectThenResend
        /// Follow a cluster redirect (the router's job; a single-server connection delivers it).
        case redirect(to: RedisEndpoint, asking: Bool, slot: Int)
        /// Fail the caller with this error: the command did not run.
        case fail(RedisError)
    }

    /// The decision for a reply. `retries` is how many times this command was resent already;
    /// `cluster` says whether redirects are followed.
    func decide(
        _ reply: RedisReply, sentAsEvalSHA: Bool, retries: Int, deadline: ContinuousClock.Instant, now: ContinuousClock.Instant,
        cluster: Bool = false
    ) -> Decision {
        switch RedisReplyKind(reply) {
        case .answer:
            return .deliver
        case .noScript:
            // Only one EVAL after an EVALSHA: EVAL itself never answers NOSCRIPT.
            return sentAsEvalSHA ? .resendAsEval : .deliver
        case .notNow:
            guard now < deadline else {
                return .fail(
                    RedisError(
                        .unavailable, endpoint: endpoint,
                        detail: "server still answering \(RedisConnection.firstLine(reply.errorMessage ?? "")) at the retry deadline"))
            }
            return .retry(notBefore: now + backoff.delay(attempt: retries))
        case .readOnly:
            guard now < deadline else {
                return .fail(
                    RedisError(
                        .unavailable, endpoint: endpoint,
                        detail: "the server is a read-only replica (READONLY) and no primary answered by the retry deadline; point jobq at the primary"))
            }
            return .reconnectThenResend
        case .moved(let slot, let to):
            return cluster ? .redirect(to: to, asking: false, slot: slot) : .deliver
        case .ask(let slot, let to):
            return cluster ? .redirect(to: to, asking: true, slot: slot) : .deliver
        }
    }

    /// What to do with a command that was on the wire when its connection died (or its reply
    /// timed out): resend it if it is idempotent and its deadline has not passed; otherwise its
    /// caller gets `error` (`outcomeUnknown`: it may have run).
    enum LostDecision: Equatable, Sendable {
        case resend
        case fail(RedisError)
    }

    func decideLost(idempotent: Bool, deadline: ContinuousClock.Instant, now: ContinuousClock.Instant, error: RedisError) -> LostDecision {
        idempotent && now < deadline ? .resend : .fail(error)
    }

    /// What a failed connect means for the commands waiting for it.
    enum ConnectFailureDecision: Equatable, Sendable {
        /// Waiting will not fix it (a wrong password, a TLS check, a bad URL): fail them all now.
        case failAll(RedisError)
        /// Fail those past their deadline with this error, keep the rest for the next attempt.
        case failExpired(RedisError)
    }

    func decideConnectFailure(_ error: RedisError) -> ConnectFailureDecision {
        if error.code == .authFailed || error.code == .invalidURL || error.code == .tlsFailed { return .failAll(error) }
        return .failExpired(
            RedisError(.unavailable, endpoint: error.endpoint, detail: "no connection within the retry deadline; last error: \(error.detail)"))
    }
}

/// When a connection tries to connect again: capped exponential backoff with jitter
/// (``RetryBackoff``), reset by the first reply after a connect.
struct ReconnectSchedule: Sendable {
    let backoff: RetryBackoff
    private(set) var attempt = 0
    private(set) var nextAttempt: ContinuousClock.Instant

    init(backoff: RetryBackoff, now: ContinuousClock.Instant = .now) {
        self.backoff = backoff
        self.nextAttempt = now
    }

    func isDue(_ now: ContinuousClock.Instant) -> Bool { now >= nextAttempt }

    /// A connect failed or a connection died: the next try waits out the current attempt's
    /// backoff.
    mutating func failed(now: ContinuousClock.Instant) {
        nextAttempt = now + backoff.delay(attempt: attempt)
        attempt += 1
    }

    /// The connection answered: the next failure starts from the base delay again.
    mutating func succeeded() { attempt = 0 }
}

/// The cluster router's state for one batch: how often it was redirected and how often a node
/// could not be reached, against the batch's deadline.
struct ClusterRetryBudget: Sendable {
    static let maxRedirects = 16
    let deadline: ContinuousClock.Instant
    private(set) var redirects = 0
    private(set) var unreachable = 0

    init(deadline: ContinuousClock.Instant) { self.deadline = deadline }

    /// A round of the batch was redirected; an error once that has happened too often (a
    /// resharding that does not settle, or two nodes pointing at each other).
    mutating func redirected(endpoint: String?) -> RedisError? {
        redirects += 1
        guard redirects <= Self.maxRedirects else {
            return RedisError(.unavailable, endpoint: endpoint, detail: "still redirected after \(Self.maxRedirects) tries (a resharding in progress?)")
        }
        return nil
    }

    /// Whether a flight that failed with `error` may be sent again (to the slot's owner after
    /// re-reading the map): nothing was sent, or the flight is idempotent, and the deadline has
    /// not passed.
    func mayRetry(after error: RedisError, idempotent: Bool, now: ContinuousClock.Instant) -> Bool {
        let retriable = error.code == .unavailable || error.code == .connectionFailed || (idempotent && error.code == .outcomeUnknown)
        return retriable && now < deadline
    }

    /// A node could not be reached: how long to wait before re-reading the map (50 ms doubling,
    /// at most 1 s).
    mutating func unreachableDelay() -> Duration {
        unreachable += 1
        return min(.seconds(1), .milliseconds(50 * (1 << min(unreachable, 5))))
    }
}
