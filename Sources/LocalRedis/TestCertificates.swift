import Foundation
public import JobQ

#if canImport(Glibc)
    import Glibc
#endif

/// A throw-away PKI for TLS tests, the demo and the benchmark, made with the `openssl` CLI in a
/// directory of its own: a CA, a server certificate for `localhost` and `127.0.0.1`, a client
/// certificate, and the wrong ones a test needs (another CA, a certificate for another host, an
/// expired one, a client certificate of the other CA). EC P-256 keys, so making them takes
/// milliseconds. Valid for two days.
public struct TestCertificates: Sendable {
    public let directory: String

    public var caFile: String { directory + "/ca.crt" }
    /// For `localhost` and `127.0.0.1`, usable as a client certificate too: cluster nodes and
    /// replicas present it to each other.
    public var serverCertFile: String { directory + "/server.crt" }
    public var serverKeyFile: String { directory + "/server.key" }
    /// The server key's certificate for `wrong.example` only (no `localhost`, no IP).
    public var wrongHostCertFile: String { directory + "/wrong-host.crt" }
    /// The server key's certificate for `node.jobq.test` only (no `localhost`, no IP): a cluster
    /// node that announces that host name (`cluster-announce-hostname`). Usable as a client
    /// certificate too (the cluster bus).
    public var namedHostCertFile: String { directory + "/named-host.crt" }
    public static let namedHost = "node.jobq.test"
    /// The server key's certificate, expired since yesterday.
    public var expiredCertFile: String { directory + "/expired.crt" }
    public var clientCertFile: String { directory + "/client.crt" }
    public var clientKeyFile: String { directory + "/client.key" }
    /// A CA that signed nothing the server uses.
    public var otherCAFile: String { directory + "/other-ca.crt" }
    /// A client certificate signed by the other CA (a server trusting only `caFile` rejects it).
    public var otherClientCertFile: String { directory + "/other-client.crt" }
    public var otherClientKeyFile: String { directory + "/other-client.key" }

    public struct MakeError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Makes the files in `directory` (created if missing).
    public static func make(in directory: String) async throws -> TestCertificates {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let made = TestCertificates(directory: directory)
        guard let openssl = RedisServerProcess.findExecutable("openssl") else {
            throw MakeError(description: "openssl is not installed (apt-get install -y openssl)")
        }
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        func path(_ name: String) -> String { directory + "/" + name }
        try write(path("server.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n")
        try write(path("wrong.ext"), "subjectAltName=DNS:wrong.example\nextendedKeyUsage=serverAuth\n")
        try write(path("named.ext"), "subjectAltName=DNS:\(namedHost)\nextendedKeyUsage=serverAuth,clientAuth\n")
        try write(path("client.ext"), "extendedKeyUsage=clientAuth\n")
        let steps: [[String]] = [
            ["req", "-x509"] + ec + ["-keyout", path("ca.key"), "-out", path("ca.crt"), "-days", "2", "-subj", "/CN=jobq test CA"],
            ["req", "-x509"] + ec + ["-keyout", path("other-ca.key"), "-out", path("other-ca.crt"), "-days", "2", "-subj", "/CN=jobq other CA"],
            ["req"] + ec + ["-keyout", path("server.key"), "-out", path("server.csr"), "-subj", "/CN=localhost"],
            sign("server.csr", by: "ca", into: "server.crt", days: "2", extensions: "server.ext"),
            sign("server.csr", by: "ca", into: "wrong-host.crt", days: "2", extensions: "wrong.ext"),
            sign("server.csr", by: "ca", into: "named-host.crt", days: "2", extensions: "named.ext"),
            sign("server.csr", by: "ca", into: "expired.crt", days: "-1", extensions: "server.ext"),
            ["req"] + ec + ["-keyout", path("client.key"), "-out", path("client.csr"), "-subj", "/CN=jobq-worker"],
            sign("client.csr", by: "ca", into: "client.crt", days: "2", extensions: "client.ext"),
            ["req"] + ec + ["-keyout", path("other-client.key"), "-out", path("other-client.csr"), "-subj", "/CN=stranger"],
            sign("other-client.csr", by: "other-ca", into: "other-client.crt", days: "2", extensions: "client.ext"),
        ]
        for step in steps {
            let child = try ChildProcess(executable: openssl, arguments: step, outputPath: path("openssl.log"))
            let status = await child.wait()
            guard status == 0 else {
                let log = (try? String(contentsOfFile: path("openssl.log"), encoding: .utf8)) ?? ""
                throw MakeError(description: "openssl \(step.prefix(2).joined(separator: " ")) failed (status \(status)): \(log.suffix(300))")
            }
        }
        return made

        func sign(_ csr: String, by ca: String, into output: String, days: String, extensions: String) -> [String] {
            [
                "x509", "-req", "-in", path(csr), "-CA", path(ca + ".crt"), "-CAkey", path(ca + ".key"), "-CAcreateserial",
                "-out", path(output), "-days", days, "-extfile", path(extensions),
            ]
        }
    }

    private static func write(_ path: String, _ text: String) throws {
        try text.write(toFile: path, atomically: true, encoding: .utf8)
    }

    /// Client settings that trust this CA (and present the client certificate when asked to).
    public func clientTLS(withClientCertificate: Bool = false) -> RedisTLS {
        RedisTLS(
            caFile: caFile, certFile: withClientCertificate ? clientCertFile : nil, keyFile: withClientCertificate ? clientKeyFile : nil)
    }
}
