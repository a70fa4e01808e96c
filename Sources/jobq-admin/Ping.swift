import ArgumentParser
import Foundation
import JobQ

/// `jobq-admin ping`: can we reach Redis, as whom, how fast, and is it set up durably?
struct Ping: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check the connection to Redis: version, round-trip time, durability settings."
    )

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let client = try global.makeClient()
        defer { Task { await client.close() } }
        let info: RedisServerInfo
        var samples: [Duration] = []
        let session: RedisTLSSession?
        do {
            try await client.ping()
            for _ in 0..<5 {
                let start = ContinuousClock.now
                try await client.ping()
                samples.append(ContinuousClock.now - start)
            }
            info = try await RedisServerInfo.fetch(from: client)
            session = try await client.tlsSession()
        } catch {
            throw AdminFailure(error)
        }
        let best = samples.min() ?? .zero
        let micros = Int((best.components.attoseconds / 1_000_000_000_000) + best.components.seconds * 1_000_000)
        let problems = info.durabilityProblems
        if global.json {
            let object: [String: Any] = [
                "redis": client.configuration.redactedURL,
                "version": info.version,
                "roundTripMicroseconds": micros,
                "aof": info.aofEnabled,
                "maxmemoryPolicy": info.maxmemoryPolicy,
                "durabilityProblems": problems,
                "tls": session.map { s -> [String: Any] in
                    [
                        "version": s.version, "cipher": s.cipher, "serverSubject": s.subject,
                        "serverNotAfter": s.notAfter.map { ISO8601DateFormatter().string(from: $0) } ?? NSNull(),
                        "verified": !(client.configuration.tls?.insecureSkipVerify ?? false),
                    ]
                } ?? NSNull(),
            ]
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            Output.line(String(decoding: data, as: UTF8.self))
        } else {
            Output.line("redis      \(client.configuration.redactedURL)")
            Output.line("version    \(info.version)")
            Output.line("round trip \(micros) µs (best of 5)")
            if let session {
                let expiry = session.notAfter.map { ISO8601DateFormatter().string(from: $0) } ?? "unknown"
                let verified = client.configuration.tls?.insecureSkipVerify == true ? "NOT VERIFIED (insecureSkipVerify)" : "verified"
                Output.line("tls        \(session.version), \(session.cipher), \(verified)")
                Output.line("server     \(Output.safe(session.subject)), certificate valid until \(expiry)")
            } else {
                Output.line("tls        off (plain TCP)")
            }
            Output.line("durability \(problems.isEmpty ? "ok (AOF on, noeviction)" : "AT RISK")")
            for p in problems { Output.line("  - \(p)") }
        }
    }
}
