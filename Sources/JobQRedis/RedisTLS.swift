internal import CJobQNet
public import Foundation
import Synchronization

/// TLS settings for every connection to Redis (`rediss://`, `rediss+cluster://`,
/// `rediss+sentinel://`): pooled, blocking, subscriber and lease connections alike.
///
/// Verification is on by default and checks the host name (or IP) connected to against the
/// server's certificate. TLS 1.2 is the minimum. Without ``caFile`` the system trust store is
/// used, which is what managed services (ElastiCache, Azure Cache for Redis, Upstash, Redis Cloud)
/// need. The files are read again when they change on disk, so a rotated certificate takes effect
/// at the next connect without a restart.
public struct RedisTLS: Sendable, Hashable, CustomStringConvertible {
    /// PEM file of the CA certificates to trust; nil: the system trust store.
    public var caFile: String?
    /// PEM client certificate (chain) for mutual TLS (`tls-auth-clients yes`); needs ``keyFile``.
    public var certFile: String?
    /// PEM private key of ``certFile``.
    public var keyFile: String?
    /// The name to send as SNI and to check the certificate against, when it differs from the
    /// host connected to (a cluster node announced by IP, a tunnel, a private endpoint).
    public var serverName: String?
    /// Skips certificate verification. Encrypts, but anyone in the path can pretend to be the
    /// server: every start logs a warning. For tests and migrations only.
    public var insecureSkipVerify: Bool = false

    public init(caFile: String? = nil, certFile: String? = nil, keyFile: String? = nil, serverName: String? = nil, insecureSkipVerify: Bool = false) {
        self.caFile = caFile
        self.certFile = certFile
        self.keyFile = keyFile
        self.serverName = serverName
        self.insecureSkipVerify = insecureSkipVerify
    }

    public var description: String {
        var parts = [caFile.map { "ca \($0)" } ?? "system trust store"]
        if let certFile { parts.append("client certificate \(certFile)") }
        if let serverName { parts.append("server name \(serverName)") }
        if insecureSkipVerify { parts.append("VERIFICATION OFF") }
        return "TLS (" + parts.joined(separator: ", ") + ")"
    }

    /// The client certificate's expiry and subject, read from ``certFile`` (nil when none is set).
    /// The file is read by OpenSSL on a thread of its own, never on the cooperative pool.
    public func clientCertificate() async throws(RedisError) -> (subject: String, notAfter: Date)? {
        guard let certFile else { return nil }
        let info: Result<(String, Date), RedisError> = await onOwnThread("jobq-tls-files") {
            var notAfter: Int64 = 0
            var subject = [CChar](repeating: 0, count: 256)
            var error = [CChar](repeating: 0, count: 256)
            if jobq_tls_certificate_file_info(certFile, &notAfter, &subject, subject.count, &error, error.count) != 0 {
                return .failure(RedisError(.tlsFailed, endpoint: nil, detail: String(cBuffer: error)))
            }
            return .success((String(cBuffer: subject), Date(timeIntervalSince1970: TimeInterval(notAfter))))
        }
        let (subject, notAfter) = try info.get()
        return (subject, notAfter)
    }
}

/// Runs blocking work (OpenSSL, sockets, files) on a new thread and waits for it without holding
/// a thread of the cooperative pool.
func onOwnThread<T: Sendable>(_ name: String, _ body: @escaping @Sendable () -> Result<T, RedisError>) async -> Result<T, RedisError> {
    await withCheckedContinuation { continuation in
        let thread = Thread { continuation.resume(returning: body()) }
        thread.name = name
        thread.start()
    }
}

extension RedisTLS {
    /// Loads the files the way a connection will (CA, client certificate and key, and that the two
    /// match), so a start-up check fails before the first connect. OpenSSL runs on a thread of its
    /// own, never on the cooperative pool.
    public func checkFiles() async throws(RedisError) {
        let settings = self
        let loaded: Result<Bool, RedisError> = await onOwnThread("jobq-tls-files") {
            do throws(RedisError) {
                _ = try TLSContext.context(for: settings, endpoint: "")
                return .success(true)
            } catch {
                return .failure(error)
            }
        }
        _ = try loaded.get()
    }
}

/// What a TLS connection negotiated (`jobq-admin ping` prints it).
package struct RedisTLSSession: Sendable, Hashable {
    package var version: String
    package var cipher: String
    /// The server certificate's subject (empty when verification was off and none was sent).
    package var subject: String
    package var notAfter: Date?
}

extension RedisClient {
    /// Connects once (on a thread of its own, not the cooperative pool) and reports what TLS
    /// negotiated with the server this client talks to (the first seed node of a cluster, the
    /// primary the sentinels name); nil for a plain connection.
    package func tlsSession() async throws(RedisError) -> RedisTLSSession? {
        var target = configuration
        if let seeds = configuration.clusterSeeds, let first = seeds.first { target = configuration.node(first) }
        guard target.tls != nil else { return nil }
        let probe = target
        let result: Result<RedisTLSSession?, RedisError> = await onOwnThread("jobq-tls-probe") {
            let connection = RedisConnection(configuration: probe, replyTimeout: probe.commandTimeout)
            defer { connection.close() }
            do throws(RedisError) {
                try connection.connect()
                return .success(connection.tlsSession)
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }
}

/// OpenSSL client contexts, one per settings and file version, shared by every connection.
final class TLSContext: @unchecked Sendable {
    // The pointer is only handed to OpenSSL, which locks its own context state.
    let pointer: OpaquePointer

    init(pointer: OpaquePointer) { self.pointer = pointer }

    deinit { jobq_tls_context_free(pointer) }

    /// Per settings: the files' modification times when the context was made, and the context.
    private static let cache = Mutex<[RedisTLS: (stamps: [Int64], context: TLSContext)]>([:])

    /// The context for `tls`, made (files read) on first use and again after a file changed.
    /// Runs on a connection's own thread.
    static func context(for tls: RedisTLS, endpoint: String) throws(RedisError) -> TLSContext {
        let stamps = [tls.caFile, tls.certFile, tls.keyFile].map { path -> Int64 in
            guard let path else { return 0 }
            return Int64(jobq_file_stamp(path))
        }
        let result: Result<TLSContext, RedisError> = cache.withLock { entries in
            if let entry = entries[tls], entry.stamps == stamps { return .success(entry.context) }
            var error = [CChar](repeating: 0, count: 512)
            guard let made = jobq_tls_context_new(tls.caFile, tls.certFile, tls.keyFile, tls.insecureSkipVerify ? 0 : 1, &error, error.count) else {
                return .failure(RedisError(.tlsFailed, endpoint: endpoint, detail: String(cBuffer: error)))
            }
            let context = TLSContext(pointer: made)
            entries[tls] = (stamps, context)
            return .success(context)
        }
        return try result.get()
    }
}

extension String {
    /// The text of a NUL-terminated C buffer (filled by the C shims).
    init(cBuffer buffer: [CChar]) {
        self.init(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

extension RedisTLS {
    /// One line for a failed handshake check, naming the check and what to change.
    static func failureText(_ failure: Int32, detail: String, serverName: String, tls: RedisTLS, timeoutMs: Int) -> String {
        let ca = tls.caFile.map { "the CA file \($0)" } ?? "the system trust store"
        switch failure {
        case Int32(JOBQ_TLS_UNKNOWN_CA):
            return "TLS: the server's certificate is not signed by a CA in \(ca) (\(detail)): set redis.tls.caFile to the CA that issued it"
        case Int32(JOBQ_TLS_HOSTNAME):
            return
                "TLS: the server's certificate is not valid for \(serverName) (\(detail)): connect by a name the certificate lists, or set redis.tls.serverName"
        case Int32(JOBQ_TLS_EXPIRED):
            return "TLS: the server's certificate has expired (\(detail)): renew it on the server"
        case Int32(JOBQ_TLS_NOT_YET_VALID):
            return "TLS: the server's certificate is not valid yet (\(detail)): check the clocks of both machines"
        case Int32(JOBQ_TLS_CLIENT_CERT_REQUIRED):
            return "TLS: the server requires a client certificate (tls-auth-clients) and none was sent: set redis.tls.certFile and redis.tls.keyFile"
        case Int32(JOBQ_TLS_CLIENT_CERT_REJECTED):
            return "TLS: the server rejected the client certificate (\(detail)): it must be signed by a CA in the server's tls-ca-cert-file and be valid now"
        case Int32(JOBQ_TLS_NOT_TLS):
            return "TLS: the server answered in plain text, so this is not a TLS port (\(detail)): use redis:// for it, or the server's tls-port"
        case Int32(JOBQ_TLS_HANDSHAKE_CLOSED):
            return "TLS: the server closed the connection during the handshake (\(detail)): is that the server's tls-port?"
        case Int32(JOBQ_TLS_TIMEOUT):
            return "TLS: no answer to the TLS handshake within \(timeoutMs) ms: likely a plain port (use redis://, or the server's tls-port)"
        default:
            return "TLS handshake failed: \(detail)"
        }
    }
}
