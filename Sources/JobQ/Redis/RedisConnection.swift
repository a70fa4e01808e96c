internal import CHiredis
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The one owner of a hiredis `redisContext`. Not thread-safe: each instance is confined to the
/// thread that created it (a ``RedisConnectionLoop`` or a ``RedisSubscriber`` thread).
///
/// After every connect it applies, in order: socket timeout, keep-alive (TCP), `AUTH`, `SELECT`,
/// `CLIENT SETNAME`, and reads `CLIENT ID` (so another connection can `CLIENT UNBLOCK` this one).
final class RedisConnection {
    let configuration: RedisConfiguration
    /// Socket timeout for replies, in milliseconds (0 = none).
    let replyTimeoutMs: Int
    private(set) var context: UnsafeMutablePointer<redisContext>?
    /// `CLIENT ID` of the current connection.
    private(set) var clientID: Int64 = 0
    /// When a reply was last read or a command last sent.
    var lastActivity = ContinuousClock.now

    init(configuration: RedisConfiguration, replyTimeout: Duration) {
        ProcessSignals.ignoreBrokenPipes()
        self.configuration = configuration
        self.replyTimeoutMs = replyTimeout.milliseconds
    }

    deinit { close() }

    var isConnected: Bool {
        guard let context else { return false }
        return context.pointee.err == 0
    }

    /// In Sentinel mode: the primary the sentinels named at the last connect.
    private(set) var resolvedEndpoint: RedisEndpoint?

    var endpointDescription: String {
        if let resolvedEndpoint, configuration.isSentinel { return "\(resolvedEndpoint) (\(configuration.displayEndpoint))" }
        return configuration.displayEndpoint
    }

    /// The file descriptor of the live connection, or -1.
    var fileDescriptor: Int32 { context.map { $0.pointee.fd } ?? -1 }

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
        let c: UnsafeMutablePointer<redisContext>?
        switch target {
        case .tcp(let host, let port):
            c = CHiredis_connectTCP(host, Int32(port), timeoutMs)
        case .unix(let path):
            c = CHiredis_connectUnix(path, timeoutMs)
        }
        guard let c else {
            throw RedisError(.connectionFailed, endpoint: endpointDescription, detail: "out of memory allocating a connection")
        }
        if c.pointee.err != 0 {
            let detail = String(cString: CHiredis_errstr(c))
            redisFree(c)
            throw RedisError(.connectionFailed, endpoint: endpointDescription, detail: detail)
        }
        context = c
        _ = CHiredis_setCloseOnExec(c)
        if CHiredis_setTimeout(c, replyTimeoutMs) != REDIS_OK {
            let detail = String(cString: CHiredis_errstr(c))
            close()
            throw RedisError(.connectionFailed, endpoint: endpointDescription, detail: "cannot set socket timeout: \(detail)")
        }
        if case .tcp = target {
            _ = redisEnableKeepAlive(c)
        }
        do {
            try handshake()
            if let sentinel = configuration.sentinel { try checkPrimary(sentinel) }
        } catch {
            close()
            throw error
        }
        lastActivity = .now
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
        if let context { redisFree(context) }
        context = nil
        clientID = 0
    }

    /// Queues a command in hiredis' output buffer; nothing is sent until a reply is read.
    func append(_ command: RedisCommand) {
        append(prefix: [], command)
    }

    /// Queues `prefix` arguments followed by `command`'s arguments as one command.
    ///
    /// The command is already RESP-encoded (``RedisCommand``), so this is a copy into hiredis'
    /// output buffer: the header line, the prefix arguments, then the body.
    func append(prefix: [[UInt8]], _ command: RedisCommand) {
        guard let context else { return }
        command.withHeader(extra: prefix.count) { h in
            h.withMemoryRebound(to: CChar.self) { _ = redisAppendFormattedCommand(context, $0.baseAddress, $0.count) }
        }
        if !prefix.isEmpty {
            var head: [UInt8] = []
            for p in prefix {
                head.append(UInt8(ascii: "$"))
                head.append(contentsOf: String(p.count).utf8)
                head.append(contentsOf: [13, 10])
                head.append(contentsOf: p)
                head.append(contentsOf: [13, 10])
            }
            head.withUnsafeBufferPointer { h in
                h.withMemoryRebound(to: CChar.self) { _ = redisAppendFormattedCommand(context, $0.baseAddress, $0.count) }
            }
        }
        command.body.withUnsafeBufferPointer { b in
            b.withMemoryRebound(to: CChar.self) { _ = redisAppendFormattedCommand(context, $0.baseAddress, $0.count) }
        }
    }

    /// Sends what is buffered (first call) and reads the next reply.
    /// - Throws: a connection failure (the connection is dead afterwards); the code is
    ///   `outcomeUnknown` because the command may have run.
    func readReply() throws(RedisError) -> RedisReply {
        guard let context else {
            throw RedisError(.connectionFailed, endpoint: endpointDescription, detail: "not connected")
        }
        var raw: UnsafeMutableRawPointer?
        let status = redisGetReply(context, &raw)
        guard status == REDIS_OK, let raw else {
            let savedErrno = errno
            var detail = String(cString: CHiredis_errstr(context))
            if context.pointee.err == REDIS_ERR_IO && (savedErrno == EAGAIN || savedErrno == EWOULDBLOCK) {
                detail = "no reply within \(replyTimeoutMs) ms (socket timeout)"
            }
            if detail.isEmpty { detail = "connection lost" }
            if let parting = partingError() { detail += " after the server said: \(parting)" }
            throw RedisError(.outcomeUnknown, endpoint: endpointDescription, detail: detail)
        }
        defer { freeReplyObject(raw) }
        lastActivity = .now
        return RedisReply(hiredis: raw.assumingMemoryBound(to: redisReply.self))
    }

    /// Sends one command and reads its reply.
    func roundTrip(_ command: RedisCommand) throws(RedisError) -> RedisReply {
        append(command)
        return try readReply()
    }

    /// True when an idle connection's socket is readable, which for a connection with nothing in
    /// flight means the server closed it (or is about to): reconnect before sending.
    var idleSocketLooksClosed: Bool {
        guard let context else { return true }
        return CHiredis_idleSocketIsReadable(context) != 0
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
        guard let context else {
            return .notSent(RedisError(.connectionFailed, endpoint: endpointDescription, detail: "not connected"))
        }
        let total = CHiredis_pendingOutput(context)
        var done: Int32 = 0
        while done == 0 {
            if redisBufferWrite(context, &done) != REDIS_OK {
                var detail = errorText ?? "write failed"
                if let parting = partingError() { detail += " after the server said: \(parting)" }
                let unsent = CHiredis_pendingOutput(context) == total
                let error = RedisError(unsent ? .connectionFailed : .outcomeUnknown, endpoint: endpointDescription, detail: detail)
                return unsent ? .notSent(error) : .partlySent(error)
            }
        }
        lastActivity = .now
        return .written
    }

    /// Sends buffered output without reading (used by the subscriber). False on a connection error.
    func flush() -> Bool {
        guard let context else { return false }
        var done: Int32 = 0
        while done == 0 {
            if redisBufferWrite(context, &done) != REDIS_OK { return false }
        }
        return true
    }

    /// Reads what the socket has into hiredis' buffer (one `read`). False on a connection error.
    func readAvailable() -> Bool {
        guard let context else { return false }
        return redisBufferRead(context) == REDIS_OK
    }

    /// A reply already in hiredis' buffer, without touching the socket. Throws on protocol errors.
    func bufferedReply() throws(RedisError) -> RedisReply? {
        guard let context else { return nil }
        var raw: UnsafeMutableRawPointer?
        if redisGetReplyFromReader(context, &raw) != REDIS_OK {
            throw RedisError(.protocolError, endpoint: endpointDescription, detail: String(cString: CHiredis_errstr(context)))
        }
        guard let raw else { return nil }
        defer { freeReplyObject(raw) }
        lastActivity = .now
        return RedisReply(hiredis: raw.assumingMemoryBound(to: redisReply.self))
    }

    /// An error line the server sent before closing, if one is waiting unread in the socket.
    private func partingError() -> String? {
        guard let context else { return nil }
        var buffer = [CChar](repeating: 0, count: 256)
        let n = CHiredis_peekUnread(context, &buffer, buffer.count)
        guard n > 1, buffer[0] == CChar(UInt8(ascii: "-")) else { return nil }
        let text = String(decoding: buffer[1..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return Self.firstLine(text).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The connection's error text, if it failed.
    var errorText: String? {
        guard let context, context.pointee.err != 0 else { return nil }
        return String(cString: CHiredis_errstr(context))
    }

    static func firstLine(_ text: String) -> String {
        String(text.split(separator: "\n", maxSplits: 1).first ?? Substring(text))
    }
}
