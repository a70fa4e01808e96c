import Foundation
import LocalRedis
import Synchronization
import Testing

@testable import JobQ
@testable import JobQRedis

/// TLS on every connection (`docs/client.md`, "Managed Redis and TLS" in the README): servers
/// started with `--port 0 --tls-port …` and certificates made at test time by the `openssl` CLI,
/// so nothing here can pass over plain TCP by accident.
@Suite("TLS", .awaitedTeardown)
struct TLSTests {
    /// One PKI per test process.
    static let certificates = Task<TestCertificates, any Error> {
        let root = ProcessInfo.processInfo.environment["JOBQ_TEST_TMPDIR"] ?? NSTemporaryDirectory()
        return try await TestCertificates.make(in: root + "/jobq-tls-\(getpid())")
    }

    /// A TLS server stopped by PID when the test ends.
    static func server(certFile: (TestCertificates) -> String? = { _ in nil }, authClients: Bool = false) async throws -> (
        RedisServerProcess, TestCertificates
    ) {
        let pki = try await certificates.value
        var options = RedisServerProcess.Options()
        options.tls = .init(certificates: pki, certFile: certFile(pki), authClients: authClients)
        let server = try await RedisServerProcess.start(options)
        onTeardown { await server.destroy() }
        return (server, pki)
    }

    /// What a connect with `tls` at `server` fails with (nil: it worked).
    static func connectError(_ server: RedisServerProcess, _ configure: (inout RedisConfiguration) -> Void) async -> RedisError? {
        var configuration = server.configuration
        configuration.retryDeadline = .seconds(2)
        configure(&configuration)
        let client = RedisClient(configuration: configuration)
        let result: RedisError?
        do {
            try await client.ping()
            result = nil
        } catch {
            result = error
        }
        await client.close()
        return result
    }

    @Test("a job end to end over TLS only: add, take, lease renewals, progress, a cancel over pub/sub, finish")
    func endToEnd() async throws {
        let (server, _) = try await Self.server()
        #expect(server.url.hasPrefix("rediss://127.0.0.1:"))
        let client = RedisClient(configuration: server.configuration)
        onTeardown { await client.close() }
        let queue = try await uniqueQueue(client: client)
        let holding = Latch()
        let release = Latch()
        var handlers = JobHandlers()
        handlers.register(name: "hold") { _, context in
            context.progress(percent: 40, message: "over tls")
            holding.open()
            await release.wait()
            return Array("held".utf8)
        }
        handlers.register(name: "hang") { _, context in
            _ = await context.waitForCancellation()
            return []
        }
        let held = try await queue.add(name: "hold", payload: .json(#"{"n":1}"#)).id
        let hung = try await queue.add(name: "hang", payload: .json("{}")).id
        // A 1 s lease renews about every 330 ms, through the lease connection, over TLS.
        try await withWorker(queue, concurrency: 2, lease: .seconds(1), handlers: handlers) { _ in
            await holding.wait()
            let first = try await client.send("ZSCORE", queue.keys.active, held).string.flatMap(Double.init)
            let start = try #require(first, "the held job is in the active set with a lease deadline")
            try await eventually(20, "a lease renewal moves the held job's deadline") {
                let now = try await client.send("ZSCORE", queue.keys.active, held).string.flatMap(Double.init) ?? 0
                return now > start + 500
            }
            _ = try await queue.cancel(hung, reason: "over tls")
            try await queue.expectEvents(.cancelled, job: hung, within: 20)
            release.open()
            try await queue.expectEvents(.completed, job: held, within: 20)
        }
        let job = try #require(try await queue.inspector.job(held))
        #expect(job.progress?.percent == 40)
        #expect(job.result == Array("held".utf8))
        #expect(try await queue.eventKinds(for: held).contains("stalled") == false)
        let port = try await client.send("CONFIG", "GET", "port").array?.last?.string
        #expect(port == "0", "the server listens on its TLS port only")
    }

    @Test("tls-auth-clients yes: without a client certificate one line says it is required; with one it works")
    func mutualTLS() async throws {
        let (server, pki) = try await Self.server(authClients: true)
        let missing = await Self.connectError(server) { $0.tls = pki.clientTLS(withClientCertificate: false) }
        #expect(missing?.code == .tlsFailed)
        #expect(missing?.detail.contains("requires a client certificate") == true, "\(String(describing: missing))")
        #expect(missing?.detail.contains("redis.tls.certFile") == true)
        let stranger = await Self.connectError(server) {
            $0.tls = RedisTLS(caFile: pki.caFile, certFile: pki.otherClientCertFile, keyFile: pki.otherClientKeyFile)
        }
        #expect(stranger?.code == .tlsFailed, "\(String(describing: stranger))")
        #expect(stranger?.detail.contains("rejected the client certificate") == true, "\(String(describing: stranger))")
        let mismatched = await Self.connectError(server) {
            $0.tls = RedisTLS(caFile: pki.caFile, certFile: pki.clientCertFile, keyFile: pki.otherClientKeyFile)
        }
        #expect(mismatched?.code == .tlsFailed)
        #expect(mismatched?.detail.contains("does not match") == true, "\(String(describing: mismatched))")
        let ok = await Self.connectError(server) { $0.tls = pki.clientTLS(withClientCertificate: true) }
        #expect(ok == nil, "\(String(describing: ok))")
    }

    @Test("verification: an unknown CA, a certificate for another host and an expired one each fail with the check named")
    func verification() async throws {
        let pki = try await Self.certificates.value
        let (good, _) = try await Self.server()
        let unknownCA = await Self.connectError(good) { $0.tls = RedisTLS(caFile: pki.otherCAFile) }
        #expect(unknownCA?.code == .tlsFailed)
        #expect(unknownCA?.detail.contains("not signed by a CA in the CA file \(pki.otherCAFile)") == true, "\(String(describing: unknownCA))")
        let systemStore = await Self.connectError(good) { $0.tls = RedisTLS() }
        #expect(systemStore?.detail.contains("the system trust store") == true, "\(String(describing: systemStore))")
        let skipped = await Self.connectError(good) { $0.tls = RedisTLS(caFile: pki.otherCAFile, insecureSkipVerify: true) }
        #expect(skipped == nil, "insecureSkipVerify connects anyway: \(String(describing: skipped))")

        let (wrongHost, _) = try await Self.server(certFile: { $0.wrongHostCertFile })
        let mismatch = await Self.connectError(wrongHost) { _ in }
        #expect(mismatch?.code == .tlsFailed)
        #expect(mismatch?.detail.contains("not valid for 127.0.0.1") == true, "\(String(describing: mismatch))")
        let named = await Self.connectError(wrongHost) { $0.tls?.serverName = "wrong.example" }
        #expect(named == nil, "serverName checks the certificate against that name: \(String(describing: named))")

        let (expired, _) = try await Self.server(certFile: { $0.expiredCertFile })
        let old = await Self.connectError(expired) { _ in }
        #expect(old?.code == .tlsFailed)
        #expect(old?.detail.contains("has expired") == true, "\(String(describing: old))")
    }

    @Test("a plain client on a TLS port and a TLS client on a plain port each get one line saying which it is")
    func wrongPortKind() async throws {
        let (tlsServer, pki) = try await Self.server()
        let plainOnTLS = await Self.connectError(tlsServer) { $0.tls = nil }
        #expect(plainOnTLS?.code == .tlsFailed || plainOnTLS?.code == .connectionFailed || plainOnTLS?.code == .unavailable)
        #expect(plainOnTLS?.detail.contains("rediss://") == true, "\(String(describing: plainOnTLS))")

        let plain = try await RedisServerProcess.start(.init(transport: .tcp))
        onTeardown { await plain.destroy() }
        // A plain Redis reads the ClientHello as the start of an inline command and waits for its
        // end: the handshake times out (connect timeout), and that is retried like any connect.
        let tlsOnPlain = await Self.connectError(plain) {
            $0.tls = pki.clientTLS()
            $0.connectTimeout = .milliseconds(500)
        }
        #expect(tlsOnPlain?.code == .connectionFailed || tlsOnPlain?.code == .unavailable)
        #expect(tlsOnPlain?.detail.contains("likely a plain port (use redis://") == true, "\(String(describing: tlsOnPlain))")
    }

    @Test("a missing CA file and a client certificate without its key are refused before any byte is sent")
    func badFiles() async throws {
        let (server, pki) = try await Self.server()
        let missing = await Self.connectError(server) { $0.tls = RedisTLS(caFile: pki.directory + "/nope.crt") }
        #expect(missing?.code == .tlsFailed)
        #expect(missing?.detail.contains("cannot load the CA file") == true, "\(String(describing: missing))")
        let half = await Self.connectError(server) { $0.tls = RedisTLS(caFile: pki.caFile, certFile: pki.clientCertFile) }
        #expect(half?.detail.contains("needs both certFile and keyFile") == true, "\(String(describing: half))")
        let certificate = try #require(try await pki.clientTLS(withClientCertificate: true).clientCertificate())
        #expect(certificate.subject.contains("jobq-worker"))
        #expect(certificate.notAfter > Date() && certificate.notAfter < Date().addingTimeInterval(3 * 86_400))
    }

    @Test("a TLS server restarted under load: clients reconnect over TLS and lose nothing they were told was written")
    func restart() async throws {
        let (server, _) = try await Self.server()
        let client = RedisClient(configuration: server.configuration)
        onTeardown { await client.close() }
        let key = uniqueKey()
        _ = try await client.send("SET", key, "before")
        await server.kill()
        try await server.restart()
        // The first command after the restart waits for the reconnect (and its handshake).
        let reply = try await client.send("SET", key, "after")
        #expect(reply.string == "OK")
        #expect(try await client.send("GET", key).string == "after")
    }
}

/// The binaries over TLS: flags, environment, `ping`'s TLS lines and the exit code of a failed check.
@Suite("TLS in the binaries", .awaitedTeardown)
struct TLSBinaryTests {
    @Test("jobq-admin ping prints TLS version, cipher and the server certificate; a wrong CA exits 3 with one line; TLS flags on a plain URL exit 2")
    func adminPing() async throws {
        let (server, pki) = try await TLSTests.server(authClients: true)
        let ok = try await runAdmin([
            "ping", "--redis-url", server.url, "--redis-tls-ca-file", pki.caFile,
            "--redis-tls-cert-file", pki.clientCertFile, "--redis-tls-key-file", pki.clientKeyFile,
        ])
        #expect(ok.code == 0, "\(ok.output)")
        #expect(ok.out.contains("tls        TLSv1.3"), "\(ok.out)")
        #expect(ok.out.contains("verified"))
        #expect(ok.out.contains("CN = localhost, certificate valid until 20"), "\(ok.out)")
        let json = try await runAdmin(
            ["ping", "--json", "--redis-url", server.url],
            environment: ["JOBQ_REDIS_TLS_CA_FILE": pki.caFile, "JOBQ_REDIS_TLS_CERT_FILE": pki.clientCertFile, "JOBQ_REDIS_TLS_KEY_FILE": pki.clientKeyFile])
        let tls = try #require(jsonObject(json.out)?["tls"] as? [String: Any], "\(json.output)")
        #expect(tls["version"] as? String == "TLSv1.3" && tls["verified"] as? Bool == true)

        let wrongCA = try await runAdmin([
            "ping", "--redis-url", server.url, "--redis-tls-ca-file", pki.otherCAFile,
            "--redis-tls-cert-file", pki.clientCertFile, "--redis-tls-key-file", pki.clientKeyFile,
        ])
        #expect(wrongCA.code == 3)
        #expect(wrongCA.err.split(separator: "\n").count == 1, "\(wrongCA.err)")
        #expect(wrongCA.err.contains("tlsFailed") && wrongCA.err.contains("not signed by a CA"), "\(wrongCA.err)")

        let plain = try await runAdmin(["ping", "--redis-url", "redis://127.0.0.1:1", "--redis-tls-ca-file", pki.caFile])
        #expect(plain.code == 2)
        #expect(plain.err.contains("use rediss://"), "\(plain.err)")
    }

    @Test("jobq-worker --check-config loads the TLS files, shows them and refuses a missing key; a wrong CA at start exits 3")
    func workerSettings() async throws {
        let (server, pki) = try await TLSTests.server()
        let base = ["--redis-url", server.url, "--queue", "q", "--handler", "a=noop"]
        let ok = try await runProgram("jobq-worker", ["--check-config", "--redis-tls-ca-file", pki.caFile] + base)
        #expect(ok.code == 0, "\(ok.output)")
        #expect(ok.out.contains("tls          TLS (ca \(pki.caFile))"), "\(ok.out)")
        let halfPair = try await runProgram("jobq-worker", ["--check-config", "--redis-tls-cert-file", pki.clientCertFile] + base)
        #expect(halfPair.code == 78)
        #expect(halfPair.err.contains("needs both redis.tls.certFile and redis.tls.keyFile"), "\(halfPair.err)")
        let skip = try await runProgram(
            "jobq-worker", ["--check-config"] + base, environment: ["JOBQ_REDIS_TLS_INSECURE_SKIP_VERIFY": "true"])
        #expect(skip.code == 0, "\(skip.output)")
        #expect(skip.err.contains("insecureSkipVerify is on"), "\(skip.err)")
        let wrongCA = try await runProgram("jobq-worker", ["--redis-tls-ca-file", pki.otherCAFile] + base, timeout: 60)
        #expect(wrongCA.code == 3, "\(wrongCA.output)")
        #expect(wrongCA.output.contains("not signed by a CA in the CA file \(pki.otherCAFile)"), "\(wrongCA.output)")
    }
}
