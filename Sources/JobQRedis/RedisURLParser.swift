import Foundation

/// Parses Redis URLs. Kept apart from ``RedisConfiguration`` so it can be tested (and fuzzed) alone.
enum RedisURLParser {
    static func parse(_ url: String) throws(RedisError) -> RedisConfiguration {
        var configuration = try parsePlain(url)
        let scheme = url.prefix(while: { $0 != ":" }).lowercased()
        if scheme.hasPrefix("rediss") {
            // The TLS variants: every connection (and, for Sentinel, the sentinels too) uses TLS
            // with verification on; the files and the server name come from the settings.
            configuration.tls = RedisTLS()
            configuration.sentinel?.tls = RedisTLS()
        }
        return configuration
    }

    private static func parsePlain(_ url: String) throws(RedisError) -> RedisConfiguration {
        func invalid(_ why: String) -> RedisError {
            RedisError(.invalidURL, endpoint: nil, detail: "\(why) in Redis URL \"\(redactForError(url))\"")
        }
        guard !url.contains(where: { $0.isWhitespace || $0.asciiValue.map { $0 < 0x20 || $0 == 0x7f } == true }) else {
            throw invalid("whitespace or control characters")
        }
        guard let schemeEnd = url.range(of: "://") else {
            throw invalid("no scheme (expected redis://, rediss://, unix://, redis[s]+cluster:// or redis[s]+sentinel://)")
        }
        var scheme = url[..<schemeEnd.lowerBound].lowercased()
        // rediss, rediss+cluster, rediss+sentinel: the same syntax as without the s.
        if scheme == "rediss" || scheme == "rediss+cluster" || scheme == "rediss+sentinel" {
            scheme = "redis" + scheme.dropFirst("rediss".count)
        }
        var rest = Substring(url[schemeEnd.upperBound...])
        if scheme != "unix", let at = rest.lastIndex(of: "@"),
            let delimiter = rest.firstIndex(where: { $0 == "/" || $0 == "?" }), delimiter < at
        {
            // Otherwise the password would be read as a host, port or database, and quoted back.
            throw invalid("the user name or password holds an unencoded \"/\" or \"?\": percent-encode it (%2F, %3F)")
        }

        switch scheme {
        case "redis":
            break
        case "unix":
            break
        case "redis+cluster":
            break
        case "redis+sentinel":
            break
        default:
            throw invalid("unknown scheme \"\(scheme)\"")
        }

        // userinfo
        var username: String?
        var password: String?
        let authorityEnd =
            scheme == "unix" ? (rest.firstIndex(of: "/") ?? rest.endIndex) : (rest.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? rest.endIndex)
        if let at = rest[..<authorityEnd].lastIndex(of: "@") {
            let info = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = info.firstIndex(of: ":") {
                let user = info[..<colon]
                guard let u = percentDecode(user) else { throw invalid("bad percent-encoding in the user name") }
                guard let p = percentDecode(info[info.index(after: colon)...]) else { throw invalid("bad percent-encoding in the password") }
                username = u.isEmpty ? nil : u
                password = p
            } else {
                guard let u = percentDecode(info) else { throw invalid("bad percent-encoding in the user name") }
                username = u.isEmpty ? nil : u
            }
        }

        if scheme == "unix" {
            var path = rest
            var database = 0
            if let q = rest.firstIndex(of: "?") {
                path = rest[..<q]
                for item in rest[rest.index(after: q)...].split(separator: "&") {
                    let kv = item.split(separator: "=", maxSplits: 1)
                    guard kv.count == 2 else { throw invalid("bad query item \"\(item)\"") }
                    switch kv[0] {
                    case "db":
                        guard let db = Int(kv[1]), db >= 0 else { throw invalid("database must be a number ≥ 0") }
                        database = db
                    default:
                        throw invalid("unknown query parameter \"\(kv[0])\" (only db is known)")
                    }
                }
            }
            guard path.hasPrefix("/"), path.count > 1 else { throw invalid("a unix socket needs an absolute path (unix:///path/to/redis.sock)") }
            return RedisConfiguration(endpoint: .unix(path: String(path)), username: username, password: password, database: database)
        }

        if scheme == "redis+sentinel" {
            return try parseSentinel(rest, username: username, password: password, invalid)
        }

        // host[:port][/db]
        var hostPort = rest
        var database = 0
        if let slash = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) {
            hostPort = rest[..<slash]
            let tail = rest[slash...]
            if tail.first == "?" { throw invalid("query parameters are not supported for redis://") }
            let dbText = tail.dropFirst()
            if !dbText.isEmpty {
                guard dbText.allSatisfy(\.isASCIIDigit), let db = Int(dbText) else { throw invalid("database \"\(dbText)\" is not a number ≥ 0") }
                database = db
            }
        }
        if scheme == "redis+cluster" {
            // Seed nodes, comma-separated; the rest of the cluster is learned from them.
            guard database == 0 else { throw invalid("Redis Cluster has only database 0") }
            var seeds: [RedisEndpoint] = []
            for item in hostPort.split(separator: ",", omittingEmptySubsequences: false) {
                guard !item.isEmpty else { throw invalid("an empty seed node") }
                seeds.append(try parseHostPort(item, invalid))
            }
            guard seeds.count <= 64 else { throw invalid("more than 64 seed nodes") }
            var configuration = RedisConfiguration(endpoint: seeds[0], username: username, password: password)
            configuration.clusterSeeds = seeds
            return configuration
        }
        return RedisConfiguration(endpoint: try parseHostPort(hostPort, invalid), username: username, password: password, database: database)
    }

    /// `s1[:port],s2[:port]/masterName[/db]` (sentinel port 26379 by default).
    private static func parseSentinel(_ rest: Substring, username: String?, password: String?, _ invalid: (String) -> RedisError) throws(RedisError)
        -> RedisConfiguration
    {
        guard !rest.contains("?") else { throw invalid("query parameters are not supported for redis+sentinel://") }
        guard let slash = rest.firstIndex(of: "/") else {
            throw invalid("no primary name (redis+sentinel://host:26379,host2:26379/mymaster)")
        }
        var nodes: [RedisEndpoint] = []
        for item in rest[..<slash].split(separator: ",", omittingEmptySubsequences: false) {
            guard !item.isEmpty else { throw invalid("an empty sentinel address") }
            nodes.append(try parseHostPort(item, defaultPort: 26379, invalid))
        }
        guard nodes.count <= 64 else { throw invalid("more than 64 sentinels") }
        let path = rest[rest.index(after: slash)...].split(separator: "/", omittingEmptySubsequences: false)
        guard (1...2).contains(path.count), let name = percentDecode(path[0]), !name.isEmpty else {
            throw invalid("expected /primary-name or /primary-name/db after the sentinels")
        }
        guard name.utf8.count <= 256, !name.contains(where: { $0.isWhitespace || $0.asciiValue.map { $0 < 0x20 } == true }) else {
            throw invalid("bad primary name")
        }
        var database = 0
        if path.count == 2 {
            guard !path[1].isEmpty, path[1].allSatisfy(\.isASCIIDigit), let db = Int(path[1]) else {
                throw invalid("database \"\(path[1])\" is not a number ≥ 0")
            }
            database = db
        }
        var configuration = RedisConfiguration(endpoint: nodes[0], username: username, password: password, database: database)
        configuration.sentinel = RedisSentinelSettings(masterName: name, nodes: nodes)
        return configuration
    }

    /// `host[:port]` or `[v6]:port` (default port 6379).
    private static func parseHostPort(_ hostPort: Substring, defaultPort: Int = 6379, _ invalid: (String) -> RedisError) throws(RedisError) -> RedisEndpoint {
        var host: Substring
        var port = defaultPort
        if hostPort.first == "[" {
            guard let close = hostPort.firstIndex(of: "]") else { throw invalid("unclosed [ in IPv6 host") }
            host = hostPort[hostPort.index(after: hostPort.startIndex)..<close]
            let after = hostPort[hostPort.index(after: close)...]
            if !after.isEmpty {
                guard after.first == ":" else { throw invalid("unexpected text after ]") }
                port = try parsePort(after.dropFirst(), invalid)
            }
        } else if let colon = hostPort.lastIndex(of: ":") {
            host = hostPort[..<colon]
            port = try parsePort(hostPort[hostPort.index(after: colon)...], invalid)
        } else {
            host = hostPort
        }
        guard !host.isEmpty else { throw invalid("no host") }
        guard !host.contains(where: { "/@[],".contains($0) }) else { throw invalid("bad host \"\(host)\"") }
        return .tcp(host: String(host), port: port)
    }

    private static func parsePort(_ text: Substring, _ invalid: (String) -> RedisError) throws(RedisError) -> Int {
        guard !text.isEmpty, text.count <= 5, text.allSatisfy(\.isASCIIDigit), let port = Int(text), (1...65535).contains(port) else {
            throw invalid("port \"\(text)\" is not in 1…65535")
        }
        return port
    }

    /// The URL with any password replaced by `***`, for error messages.
    static func redactForError(_ url: String) -> String {
        // Never depends on the URL being well formed: everything between "://" and the last "@"
        // is taken as user information (a password may hold unencoded "/", "?", "#" or "@").
        guard let schemeEnd = url.range(of: "://") else {
            return url.contains("@") ? "***" : url
        }
        let rest = url[schemeEnd.upperBound...]
        guard let at = rest.lastIndex(of: "@") else { return url }
        let info = rest[..<at]
        let shownUser: Substring
        if let colon = info.firstIndex(of: ":") {
            shownUser = info[..<colon] + ":"
        } else {
            shownUser = ""  // no colon: a user name, or a password with delimiters in it; hide it too
        }
        return String(url[..<schemeEnd.upperBound]) + shownUser + "***" + String(rest[at...])
    }

    static func percentDecode(_ text: Substring) -> String? {
        var bytes: [UInt8] = []
        var i = text.utf8.startIndex
        let utf8 = text.utf8
        while i != utf8.endIndex {
            let c = utf8[i]
            if c == UInt8(ascii: "%") {
                let h1 = utf8.index(after: i)
                guard h1 != utf8.endIndex else { return nil }
                let h2 = utf8.index(after: h1)
                guard h2 != utf8.endIndex, let hi = hex(utf8[h1]), let lo = hex(utf8[h2]) else { return nil }
                bytes.append(hi << 4 | lo)
                i = utf8.index(after: h2)
            } else {
                bytes.append(c)
                i = utf8.index(after: i)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }

    static func percentEncode(_ text: String) -> String {
        var out = ""
        for b in text.utf8 {
            let c = Character(Unicode.Scalar(b))
            if b < 0x80, c.isLetter || c.isNumber || "-._~".contains(c) {
                out.append(c)
            } else {
                out += "%" + String(b, radix: 16, uppercase: true).leftPadded(to: 2)
            }
        }
        return out
    }

    private static func hex(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}

extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
}

extension String {
    func leftPadded(to width: Int, with pad: Character = "0") -> String {
        count >= width ? self : String(repeating: pad, count: width - count) + self
    }
}

/// The password-hiding rule of Redis URL errors, for any URL the executables print (an `http:`
/// handler's address in `--check-config`): everything between `://` and the last `@` is hidden
/// but the user name, whether or not the URL is well formed.
package enum URLRedaction {
    package static func redact(_ url: String) -> String { RedisURLParser.redactForError(url) }
}
