internal import CHiredis
internal import CJobQNet
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// One Redis connection: a socket (plain or TLS, `CJobQNet`) and hiredis' RESP reader. Not
/// thread-safe: each instance is confined to the thread that created it (a
/// ``RedisConnectionLoop`` or a ``RedisSubscriber`` thread), since every call here blocks.
///
/// After every connect it runs, in order: the TLS handshake (when configured), socket timeout,
/// `AUTH`, `SELECT`, `CLIENT SETNAME`, and reads `CLIENT ID` (so another connection can
/// `CLIENT UNBLOCK` this one).
final class RedisConnection {
    let configuration: RedisConfiguration
    /// Socket timeout for replies, in milliseconds (0 = none).
    let replyTimeoutMs: Int
    private var socket: OpaquePointer?
    private var reader: UnsafeMutablePointer<redisReader>?
    /// Commands appended and not yet written; `written` bytes of it are already sent.
    private var output: [UInt8] = []
    private var written = 0
    /// Set when the connection failed: it is then dead until the next connect.
    private var failure: String?
    /// The name the TLS handshake checked the certificate against.
    private var serverName = ""
    /// True once `CLIENT ID` answered: errors before that are the handshake's.
    private var handshakeDone = false
    private static let readChunk = 16 * 1024
    private let readBuffer = UnsafeMutableRawPointer.allocate(byteCount: RedisConnection.readChunk, alignment: 16)
    /// `CLIENT ID` of the current connection.
    private(set) var clientID: Int64 = 0
    /// When a reply was last read or a command last sent.
    var lastActivity = ContinuousClock.now

    init(configuration: RedisConfiguration, replyTimeout: Duration) {
        ProcessSignals.ignoreBrokenPipes()
        self.configuration = configuration
        self.replyTimeoutMs = replyTimeout.milliseconds
    }

    deinit {
        close()
        readBuffer.deallocate()
    }

    var isConnected: Bool { socket != nil && failure == nil }

    /// In Sentinel mode: the primary the sentinels named at the last connect.
    private(set) var resolvedEndpoint: RedisEndpoint?

    var endpointDescription: String {
        if let resolvedEndpoint, configuration.isSentinel { return "\(resolvedEndpoint) (\(configuration.displayEndpoint))" }
        return configuration.displayEndpoint
    }

    /// The file descriptor of the live connection, or -1.
    var fileDescriptor: Int32 { socket.map { jobq_socket_fd($0) } ?? -1 }

    /// (Re)connects and runs the handshake. On failure the connection is left closed.
    func connect() throws(RedisError) {
        close()
        let timeoutMs = max(configuration.connectTimeout.milliseconds, 1)
        var target = configuration.endpoint
        if let sentinel = configuration.sentinel {
            resolvedEndpoint = nil
            target = try RedisSentinelResolver.primary(sentinel, connectTimeout: configuration.connectTimeout, display: configuration.displayEndpoint)
            resolvedEndpoint = target
        }
        var error = [CChar](repeating: 0, count: 256)
        let made: OpaquePointer?
        switch target {
        case .tcp(let host, let port):
            made = jobq_socket_connect_tcp(host, Int32(port), Int32(clamping: timeoutMs), &error, error.count)
        case .unix(let path):
            made = jobq_socket_connect_unix(path, Int32(clamping: timeoutMs), &error, error.count)
        }
        guard let made else {
            throw RedisError(.connectionFailed, endpoint: endpointDescription, detail: String(cBuffer: error))
        }
        socket = made
        failure = nil
        handshakeDone = false
        reader = redisReaderCreate()
        guard reader != nil else {
            close()
            throw RedisError(.connectionFailed, endpoint: endpointDescription, detail: "out of memory allocating a reply reader")
        }
        do throws(RedisError) {
            if let tls = configuration.tls {
                guard case .tcp(let host, _) = target else {
                    throw RedisError(.invalidURL, endpoint: endpointDescription, detail: "TLS needs a TCP endpoint; Redis has no TLS on unix sockets")
                }
                let context = try TLSContext.context(for: tls, endpoint: endpointDescription)
                serverName = tls.serverName ?? host
                let result = jobq_socket_start_tls(made, context.pointer, serverName, Int32(clamping: timeoutMs))
                if result != Int32(JOBQ_TLS_NONE) {
                    let detail = String(cString: jobq_socket_error(made))
                    // A handshake cut short or timed out may be a restart or a network stall:
                    // retried like any connect. A failed check is not.
                    let transient = result == Int32(JOBQ_TLS_TIMEOUT) || result == Int32(JOBQ_TLS_HANDSHAKE_CLOSED)
                    throw RedisError(
                        transient ? .connectionFailed : .tlsFailed, endpoint: endpointDescription,
                        detail: RedisTLS.failureText(result, detail: detail, serverName: serverName, tls: tls, timeoutMs: timeoutMs))
                }
            }
            if jobq_socket_set_timeout(made, Int32(clamping: replyTimeoutMs)) != 0 {
                throw RedisError(.connectionFailed, endpoint: endpointDescription, detail: "cannot set socket timeout: \(String(cString: strerror(errno)))")
            }
            try handshake()
            if let sentinel = configuration.sentinel { try checkPrimary(sentinel) }
        } catch {
            close()
            throw error
        }
        handshakeDone = true
        lastActivity = .now
    }

    /// What the TLS connection negotiated; nil for a plain connection.
    var tlsSession: RedisTLSSession? {
        guard let socket, jobq_socket_is_tls(socket) != 0 else { return nil }
        var version = [CChar](repeating: 0, count: 32)
        var cipher = [CChar](repeating: 0, count: 128)
        var subject = [CChar](repeating: 0, count: 256)
        var notAfter: Int64 = 0
        guard jobq_socket_tls_session(socket, &version, version.count, &cipher, cipher.count, &subject, subject.count, &notAfter) == 0 else { return nil }
        return RedisTLSSession(
            version: String(cBuffer: version), cipher: String(cBuffer: cipher), subject: String(cBuffer: subject),
            notAfter: notAfter > 0 ? Date(timeIntervalSince1970: TimeInterval(notAfter)) : nil)
    }

    private func handshake() throws(RedisError) {
        if let password = configuration.password {
            var auth = RedisCommand("AUTH")
            if let user = configuration.username { auth.append(user) }
            auth.append(password)
            let reply = try roundTrip(auth)
            if let message = reply.errorMessage {
                let user = configuration.username ?? "default"
                throw RedisError(.authFailed, endpoint: endpointDescription, detail: "AUTH as user \(user) was refused: \(Self.firstLine(message))")
            }
        } else if let user = configuration.username {
            throw RedisError(.authFailed, endpoint: endpointDescription, detail: "user \(user) given without a password")
        }
        if configuration.database != 0 {
            let reply = try roundTrip(RedisCommand("SELECT", configuration.database))
            if let message = reply.errorMessage {
                throw RedisError(.invalidURL, endpoint: endpointDescription, detail: "SELECT \(configuration.database) failed: \(message)")
            }
        }
        if let name = configuration.clientName {
            _ = try roundTrip(RedisCommand("CLIENT", "SETNAME", name))
        }
        let id = try roundTrip(RedisCommand("CLIENT", "ID"))
        if id.errorCode == "NOAUTH" {
            throw RedisError(.authFailed, endpoint: endpointDescription, detail: "the server requires a password and none was given")
        }
        if let message = id.errorMessage {
            // e.g. "ERR max number of clients reached": the server will close this connection.
            throw RedisError(.connectionFailed, endpoint: endpointDescription, detail: Self.firstLine(message))
        }
        clientID = Int64(id.int ?? 0)
    }

    /// Sentinel mode: the server the sentinels named must say it is a primary (`ROLE`). Right after
    /// a failover a sentinel can still name the old primary, restarted as a replica: writing there
    /// would fail (`READONLY`), or worse, succeed before it is turned into a replica.
    private func checkPrimary(_ sentinel: RedisSentinelSettings) throws(RedisError) {
        let role = try roundTrip(RedisCommand("ROLE"))
        if let message = role.errorMessage {
            throw RedisError(
                .connectionFailed, endpoint: endpointDescription, detail: "ROLE failed: \(Self.firstLine(message)) (the data nodes' ACL user needs +role)")
        }
        let name = role.array?.first?.string ?? "\(role)"
        guard name == "master" else {
            throw RedisError(
                .connectionFailed, endpoint: endpointDescription,
                detail:
                    "the sentinels name this server as primary \(sentinel.masterName), but it says it is a \(name) (a failover is under way); asking the sentinels again"
            )
        }
    }

    /// Closes the socket (if any). Safe to call twice.
    func close() {
        if let socket { jobq_socket_close(socket) }
        socket = nil
        if let reader { redisReaderFree(reader) }
        reader = nil
        output.removeAll(keepingCapacity: output.capacity <= 1 << 20)
        written = 0
        clientID = 0
    }

    /// Queues a command; nothing is sent until ``writeAll()`` or a reply is read.
    func append(_ command: RedisCommand) {
        append(prefix: [], command)
    }

    /// Queues `prefix` arguments followed by `command`'s arguments as one command.
    ///
    /// The command is already RESP-encoded (``RedisCommand``), so this is a copy into the output
    /// buffer: the header line, the prefix arguments, then the body.
    func append(prefix: [[UInt8]], _ command: RedisCommand) {
        guard socket != nil else { return }
        command.withHeader(extra: prefix.count) { output.append(contentsOf: $0) }
        for p in prefix {
            output.append(UInt8(ascii: "$"))
            output.append(contentsOf: String(p.count).utf8)
            output.append(contentsOf: [13, 10])
            output.append(contentsOf: p)
            output.append(contentsOf: [13, 10])
        }
        output.append(contentsOf: command.body)
    }

    /// Sends what is buffered (first call) and reads the next reply.
    /// - Throws: a connection failure (the connection is dead afterwards); the code is
    ///   `outcomeUnknown` because the command may have run (`tlsFailed` for a TLS check that fails
    ///   during the handshake's first commands, such as a missing client certificate).
    func readReply() throws(RedisError) -> RedisReply {
        guard let socket, failure == nil else {
            throw RedisError(.connectionFailed, endpoint: endpointDescription, detail: failure ?? "not connected")
        }
        if written < output.count, case .notSent(let error) = writeAll() { throw error }
        if written < output.count { throw RedisError(.outcomeUnknown, endpoint: endpointDescription, detail: failure ?? "write failed") }
        while true {
            if let reply = try bufferedReply() { return reply }
            let n = jobq_socket_read(socket, readBuffer, Self.readChunk)
            if n > 0 {
                try feed(n)
                continue
            }
            throw readFailure(n)
        }
    }

    /// Marks the connection dead after a failed read and says why.
    private func readFailure(_ n: Int) -> RedisError {
        guard let socket else { return RedisError(.connectionFailed, endpoint: endpointDescription, detail: "not connected") }
        var detail: String
        switch n {
        case Int(JOBQ_NET_TIMEOUT): detail = "no reply within \(replyTimeoutMs) ms (socket timeout)"
        case Int(JOBQ_NET_CLOSED): detail = "Server closed the connection"
        default: detail = String(cString: jobq_socket_error(socket))
        }
        if detail.isEmpty { detail = "connection lost" }
        let tlsFailure = jobq_socket_tls_failure(socket)
        if !handshakeDone, let tls = configuration.tls, tlsFailure != Int32(JOBQ_TLS_NONE) {
            failure = detail
            return RedisError(
                .tlsFailed, endpoint: endpointDescription,
                detail: RedisTLS.failureText(tlsFailure, detail: detail, serverName: serverName, tls: tls, timeoutMs: 0))
        }
        if let parting = partingError() { detail += " after the server said: \(parting)" }
        if !handshakeDone, configuration.tls == nil, n == Int(JOBQ_NET_CLOSED) || detail.contains("reset by peer") {
            detail += " before answering the first command (if that is the server's tls-port, use rediss://)"
        }
        failure = detail
        return RedisError(.outcomeUnknown, endpoint: endpointDescription, detail: detail)
    }

    private func feed(_ n: Int) throws(RedisError) {
        guard let reader else { return }
        if !handshakeDone, n >= 3 {
            let b = readBuffer.assumingMemoryBound(to: UInt8.self)
            if configuration.tls == nil, (b[0] == 0x15 || b[0] == 0x16) && b[1] == 0x03 && b[2] <= 0x04 {
                failure = "TLS record on a plain connection"
                throw RedisError(
                    .tlsFailed, endpoint: endpointDescription,
                    detail: "TLS: the server answered a plain-text command with TLS, so this is a TLS port: use rediss:// (or the server's plain port)")
            }
        }
        if redisReaderFeed(reader, readBuffer.assumingMemoryBound(to: CChar.self), n) != REDIS_OK {
            failure = String(cString: CHiredis_readerErrstr(reader))
            throw RedisError(.protocolError, endpoint: endpointDescription, detail: failure ?? "protocol error")
        }
    }

    /// Sends one command and reads its reply.
    func roundTrip(_ command: RedisCommand) throws(RedisError) -> RedisReply {
        append(command)
        return try readReply()
    }

    /// True when an idle connection's socket is readable, which for a connection with nothing in
    /// flight means the server closed it (or is about to): reconnect before sending. A TLS record
    /// without data (a session ticket) does not count.
    var idleSocketLooksClosed: Bool {
        guard let socket, failure == nil else { return true }
        var byte: UInt8 = 0
        return jobq_socket_peek(socket, &byte, 1) != 0
    }

    /// What became of a write.
    enum WriteOutcome {
        case written
        /// The connection failed before any byte left: the commands were not sent.
        case notSent(RedisError)
        /// The connection failed part-way: some commands may have been received.
        case partlySent(RedisError)
    }

    /// Writes everything appended so far, telling apart "nothing left" from "some left".
    func writeAll() -> WriteOutcome {
        guard let socket, failure == nil else {
            return .notSent(RedisError(.connectionFailed, endpoint: endpointDescription, detail: failure ?? "not connected"))
        }
        let before = written
        while written < output.count {
            let n = output.withUnsafeBytes { jobq_socket_write(socket, $0.baseAddress! + written, $0.count - written) }
            if n > 0 {
                written += n
                continue
            }
            var detail = n == Int(JOBQ_NET_TIMEOUT) ? "write timed out after \(replyTimeoutMs) ms" : String(cString: jobq_socket_error(socket))
            if n == Int(JOBQ_NET_CLOSED) || detail.isEmpty { detail = "Server closed the connection" }
            failure = detail
            if let parting = partingError() { detail += " after the server said: \(parting)" }
            let unsent = written == before
            let error = RedisError(unsent ? .connectionFailed : .outcomeUnknown, endpoint: endpointDescription, detail: detail)
            return unsent ? .notSent(error) : .partlySent(error)
        }
        output.removeAll(keepingCapacity: output.capacity <= 1 << 20)
        written = 0
        lastActivity = .now
        return .written
    }

    /// Sends buffered output without reading (used by the subscriber). False on a connection error.
    func flush() -> Bool {
        if case .written = writeAll() { return true }
        return false
    }

    /// Reads what the socket has into the reader, without blocking (for a socket poll(2) called
    /// readable). False on a connection error or when the server closed it.
    func readAvailable() -> Bool {
        guard let socket, failure == nil else { return false }
        let n = jobq_socket_read_available(socket, readBuffer, Self.readChunk)
        if n > 0 {
            do { try feed(n) } catch { return false }
            return true
        }
        if n == 0 { return true }
        failure = n == Int(JOBQ_NET_CLOSED) ? "Server closed the connection" : String(cString: jobq_socket_error(socket))
        return false
    }

    /// Waits until the connection has something to read (TLS: decrypted bytes already buffered
    /// count), or `wakeFD` is readable, or `timeoutMs` passes (-1: no limit). 1: readable or
    /// closed; 2: only `wakeFD`; 0: timeout; -1: error.
    func waitReadable(wakeFD: Int32, timeoutMs: Int32) -> Int32 {
        jobq_socket_wait_readable(socket, wakeFD, timeoutMs)
    }

    /// A reply already in the reader, without touching the socket. Throws on protocol errors.
    func bufferedReply() throws(RedisError) -> RedisReply? {
        guard let reader else { return nil }
        var raw: UnsafeMutableRawPointer?
        if redisReaderGetReply(reader, &raw) != REDIS_OK {
            failure = String(cString: CHiredis_readerErrstr(reader))
            throw RedisError(.protocolError, endpoint: endpointDescription, detail: failure ?? "protocol error")
        }
        guard let raw else { return nil }
        defer { freeReplyObject(raw) }
        lastActivity = .now
        return RedisReply(hiredis: raw.assumingMemoryBound(to: redisReply.self))
    }

    /// An error line the server sent before closing, if one is waiting unread in the socket.
    private func partingError() -> String? {
        guard let socket else { return nil }
        var buffer = [UInt8](repeating: 0, count: 256)
        let n = jobq_socket_peek(socket, &buffer, buffer.count)
        guard n > 1, buffer[0] == UInt8(ascii: "-") else { return nil }
        let text = String(decoding: buffer[1..<n], as: UTF8.self)
        return Self.firstLine(text).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The connection's error text, if it failed.
    var errorText: String? { failure }

    static func firstLine(_ text: String) -> String {
        String(text.split(separator: "\n", maxSplits: 1).first ?? Substring(text))
    }
}
