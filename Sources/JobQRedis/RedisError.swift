/// Everything that can go wrong talking to Redis, with where it happened and what to do next.
///
/// Two channels stay apart: a connection problem (`connectionFailed`, `outcomeUnknown`,
/// `unavailable`…) is one of these errors, thrown; a server's error *reply* on a healthy connection
/// travels as ``RedisReply/error(_:)`` and becomes a ``Code-swift.struct/serverError`` only where a
/// caller asks for it to be thrown.
///
/// - Important: the password is never part of any message: ``RedisEndpoint`` prints no secrets.
public struct RedisError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What kind of failure this is. Compare with the static members.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        fileprivate enum Kind: String, Sendable {
            case invalidURL, connectionFailed, authFailed, outcomeUnknown, unavailable
            case serverError, protocolError, closed, tlsFailed
        }
        fileprivate let kind: Kind
        public var description: String { kind.rawValue }

        /// The URL or connection settings cannot be used as given.
        public static let invalidURL = Code(kind: .invalidURL)
        /// No connection could be made (refused, unreachable, DNS, connect timeout).
        public static let connectionFailed = Code(kind: .connectionFailed)
        /// The server refused the credentials (`WRONGPASS`, `NOAUTH`, unknown user). Not retried.
        public static let authFailed = Code(kind: .authFailed)
        /// The connection died (or timed out) after the command was sent: it may or may not have run.
        public static let outcomeUnknown = Code(kind: .outcomeUnknown)
        /// The command could not be carried out before its retry deadline (server down, `BUSY`,
        /// `LOADING`, `TRYAGAIN`, `CLUSTERDOWN`, `MASTERDOWN` for too long). It did not run.
        public static let unavailable = Code(kind: .unavailable)
        /// The server answered with an error reply (only thrown by helpers that ask for it).
        public static let serverError = Code(kind: .serverError)
        /// The bytes on the wire were not valid RESP.
        public static let protocolError = Code(kind: .protocolError)
        /// The client was closed before the command could run. It did not run.
        public static let closed = Code(kind: .closed)
        /// TLS could not be set up: a certificate check failed (unknown CA, host name, expiry, a
        /// client certificate required or rejected), a file could not be loaded, or one side
        /// speaks TLS and the other does not. The message names the check. Not retried.
        public static let tlsFailed = Code(kind: .tlsFailed)
    }

    public let code: Code
    /// Where: `127.0.0.1:6379`, `unix:/run/redis.sock`, with the user name if any; never a password.
    public let endpoint: String?
    /// What happened, in the words of the OS, hiredis or the server.
    public let detail: String

    public init(_ code: Code, endpoint: String?, detail: String) {
        self.code = code
        self.endpoint = endpoint
        self.detail = detail
    }

    /// The server's error reply text, for ``Code-swift.struct/serverError``.
    public var serverMessage: String? { code == .serverError ? detail : nil }

    /// What an operator should do about it.
    public var hint: String {
        switch code.kind {
        case .invalidURL:
            return "use redis://[user@]host:port/db or unix:///path/to/redis.sock; put the password in JOBQ_REDIS_PASSWORD or a password file"
        case .connectionFailed, .unavailable:
            return "check that redis-server is running and reachable there; jobq retries with backoff until the deadline"
        case .authFailed:
            return "check the user name and password (JOBQ_REDIS_PASSWORD, --redis-password-file or the config file) and the server's ACL"
        case .outcomeUnknown:
            return "the command may or may not have run; retry it only if it is idempotent"
        case .serverError:
            return "the server rejected the command; see its message"
        case .protocolError:
            return "the peer is not speaking RESP2 (is that port a Redis server?)"
        case .closed:
            return "the client was shut down; create a new one"
        case .tlsFailed:
            return "fix the TLS settings named above (redis.tls.*); waiting will not help"
        }
    }

    public var description: String {
        var text = "redis \(code)"
        if let endpoint { text += " at \(endpoint)" }
        text += ": \(detail) (\(hint))"
        return text
    }
}
