import Foundation
import Testing

@testable import JobQ
@testable import JobQRedis

@Suite("Redis URLs")
struct RedisURLTests {
    @Test(
        "accepts the documented forms",
        arguments: [
            ("redis://localhost", RedisEndpoint.tcp(host: "localhost", port: 6379), nil as String?, 0),
            ("redis://127.0.0.1:6380", .tcp(host: "127.0.0.1", port: 6380), nil, 0),
            ("redis://127.0.0.1:6380/3", .tcp(host: "127.0.0.1", port: 6380), nil, 3),
            ("redis://worker@10.0.0.1:7000/0", .tcp(host: "10.0.0.1", port: 7000), "worker", 0),
            ("redis://[::1]:6379/2", .tcp(host: "::1", port: 6379), nil, 2),
            ("redis://[::1]", .tcp(host: "::1", port: 6379), nil, 0),
            ("REDIS://host:1/", .tcp(host: "host", port: 1), nil, 0),
            ("unix:///run/redis/redis.sock", .unix(path: "/run/redis/redis.sock"), nil, 0),
            ("unix:///tmp/r.sock?db=5", .unix(path: "/tmp/r.sock"), nil, 5),
            ("unix://admin@/tmp/r.sock", .unix(path: "/tmp/r.sock"), "admin", 0),
        ])
    func parses(url: String, endpoint: RedisEndpoint, user: String?, db: Int) throws {
        let c = try RedisConfiguration(url: url)
        #expect(c.endpoint == endpoint)
        #expect(c.username == user)
        #expect(c.database == db)
        #expect(c.password == nil)
    }

    @Test("rediss, rediss+cluster and rediss+sentinel turn on verified TLS (sentinels too) and print back as TLS URLs")
    func tlsSchemes() throws {
        let plain = try RedisConfiguration(url: "redis://h:6380")
        #expect(plain.tls == nil)
        let single = try RedisConfiguration(url: "rediss://jobq:pw@cache.example.com:6380/2")
        #expect(single.tls == RedisTLS())
        #expect(single.tls?.insecureSkipVerify == false)
        #expect(single.endpoint == .tcp(host: "cache.example.com", port: 6380))
        #expect(single.database == 2)
        #expect(single.redactedURL == "rediss://jobq:***@cache.example.com:6380/2")
        let cluster = try RedisConfiguration(url: "REDISS+CLUSTER://a:1,b:2")
        #expect(cluster.tls != nil)
        #expect(cluster.clusterSeeds == [.tcp(host: "a", port: 1), .tcp(host: "b", port: 2)])
        #expect(cluster.node(.tcp(host: "c", port: 3)).tls != nil)
        #expect(cluster.redactedURL.hasPrefix("rediss+cluster://"))
        let sentinel = try RedisConfiguration(url: "rediss+sentinel://s1,s2:26380/main")
        #expect(sentinel.tls != nil)
        #expect(sentinel.sentinel?.tls != nil)
        #expect(sentinel.redactedURL == "rediss+sentinel://s1:26379,s2:26380/main")
    }

    @Test("the sentinels' TLS where it differs: off for rediss+sentinel, on for redis+sentinel, own CA and name; refused without a sentinel URL")
    func sentinelTLS() throws {
        func configure(_ url: String, _ environment: [String: String]) throws -> RedisConfiguration {
            try RedisConfiguration.commandLine(urlFlag: url, passwordFile: nil, environment: environment)
        }
        let off = try configure("rediss+sentinel://s1,s2/main", ["JOBQ_REDIS_TLS_CA_FILE": "/ca.pem", "JOBQ_REDIS_SENTINEL_TLS_ENABLED": "false"])
        #expect(off.tls?.caFile == "/ca.pem" && off.sentinel?.tls == nil)
        let same = try configure("rediss+sentinel://s1,s2/main", ["JOBQ_REDIS_TLS_CA_FILE": "/ca.pem", "JOBQ_REDIS_TLS_SERVER_NAME": "redis.internal"])
        #expect(same.sentinel?.tls?.caFile == "/ca.pem" && same.sentinel?.tls?.serverName == nil, "the CA is shared, the name is the data nodes'")
        let own = try configure(
            "rediss+sentinel://s1,s2/main",
            [
                "JOBQ_REDIS_TLS_CA_FILE": "/ca.pem", "JOBQ_REDIS_SENTINEL_TLS_CA_FILE": "/sentinel-ca.pem",
                "JOBQ_REDIS_SENTINEL_TLS_SERVER_NAME": "sentinel.internal",
            ])
        #expect(own.tls?.caFile == "/ca.pem" && own.sentinel?.tls?.caFile == "/sentinel-ca.pem" && own.sentinel?.tls?.serverName == "sentinel.internal")
        let on = try configure("redis+sentinel://s1/main", ["JOBQ_REDIS_SENTINEL_TLS_ENABLED": "true"])
        #expect(on.tls == nil && on.sentinel?.tls != nil)
        #expect(throws: RedisError.self) { try configure("redis://h:6379", ["JOBQ_REDIS_SENTINEL_TLS_ENABLED": "true"]) }
        #expect(throws: RedisError.self) {
            try configure("rediss+sentinel://s1/main", ["JOBQ_REDIS_SENTINEL_TLS_ENABLED": "false", "JOBQ_REDIS_SENTINEL_TLS_CA_FILE": "/x"])
        }
        #expect(throws: RedisError.self) { try configure("rediss+sentinel://s1/main", ["JOBQ_REDIS_SENTINEL_TLS_CERT_FILE": "/c.pem"]) }
        #expect(throws: RedisError.self) { try configure("rediss+sentinel://s1/main", ["JOBQ_REDIS_SENTINEL_TLS_ENABLED": "maybe"]) }
    }

    @Test("passwords are parsed, percent-decoded and never printed")
    func passwords() throws {
        let c = try RedisConfiguration(url: "redis://jobq:p%40ss%3Aw0rd@redis.internal:6379/1")
        #expect(c.username == "jobq")
        #expect(c.password == "p@ss:w0rd")
        #expect(c.hasPassword)
        #expect(!c.description.contains("w0rd"))
        #expect(c.redactedURL == "redis://jobq:***@redis.internal:6379/1")
        let onlyPassword = try RedisConfiguration(url: "redis://:secret@h")
        #expect(onlyPassword.username == nil)
        #expect(onlyPassword.password == "secret")
        #expect(!"\(onlyPassword)".contains("secret"))
    }

    @Test(
        "refuses malformed URLs with a message naming the problem",
        arguments: [
            ("localhost:6379", "no scheme"),
            ("http://localhost", "unknown scheme"),
            ("rediss+unix:///tmp/r.sock", "unknown scheme"),
            ("redis://", "no host"),
            ("redis://host:0", "port"),
            ("redis://host:65536", "port"),
            ("redis://host:abc", "port"),
            ("redis://host/x", "database"),
            ("redis://host/-1", "database"),
            ("redis://host?db=1", "query"),
            ("redis://[::1", "IPv6"),
            ("redis://ho st", "whitespace"),
            ("unix://relative.sock", "absolute path"),
            ("unix:///tmp/r.sock?timeout=1", "unknown query"),
            ("redis://u:%zz@host", "percent-encoding"),
            ("redis+sentinel://s1:26379", "no primary name"),
            ("redis+sentinel://s1:26379/", "primary-name"),
            ("redis+sentinel://s1,,s2/m", "empty sentinel"),
            ("redis+sentinel://s1/m/x", "database"),
            ("redis+sentinel://s1/m/1/2", "primary-name"),
            ("redis+sentinel://s1:0/m", "port"),
            ("redis+sentinel://s1/m?db=1", "query"),
            ("redis+sentinel://s1/my%20primary", "bad primary name"),
            ("redis+cluster://a:1,,b:2", "empty seed"),
            ("redis+cluster://a:1/2", "database 0"),
            ("redis+cluster://a:99999", "port"),
        ])
    func refuses(url: String, mentions: String) {
        #expect {
            _ = try RedisConfiguration(url: url)
        } throws: { error in
            guard let e = error as? RedisError else { return false }
            return e.code == .invalidURL && e.detail.contains(mentions)
        }
    }

    @Test("redis+cluster:// takes seed nodes (default port 6379, IPv6 in brackets), a user and a password; the redacted form hides it")
    func cluster() throws {
        let c = try RedisConfiguration(url: "redis+cluster://ops:s3cret@10.0.0.1:7000,10.0.0.2,[::1]:7002")
        #expect(c.clusterSeeds == [.tcp(host: "10.0.0.1", port: 7000), .tcp(host: "10.0.0.2", port: 6379), .tcp(host: "::1", port: 7002)])
        #expect(c.isCluster && c.endpoint == .tcp(host: "10.0.0.1", port: 7000))
        #expect(c.username == "ops" && c.password == "s3cret" && c.database == 0)
        #expect(c.redactedURL == "redis+cluster://ops:***@10.0.0.1:7000,10.0.0.2:6379,[::1]:7002")
        #expect(!c.node(.tcp(host: "10.0.0.2", port: 6379)).isCluster)
    }

    @Test("redis+sentinel:// takes sentinels (default port 26379), the primary's name and a database; the password is the data nodes'")
    func sentinel() throws {
        let c = try RedisConfiguration(url: "redis+sentinel://jobq:s3cret@10.0.0.1,10.0.0.2:26380,[::1]/my%2Dprimary/2")
        #expect(
            c.sentinel
                == RedisSentinelSettings(
                    masterName: "my-primary",
                    nodes: [
                        .tcp(host: "10.0.0.1", port: 26379), .tcp(host: "10.0.0.2", port: 26380), .tcp(host: "::1", port: 26379),
                    ]))
        #expect(c.isSentinel && !c.isCluster)
        #expect(c.username == "jobq" && c.password == "s3cret" && c.database == 2)
        #expect(c.sentinel?.password == nil, "the URL's password is for the data nodes")
        #expect(c.redactedURL == "redis+sentinel://jobq:***@10.0.0.1:26379,10.0.0.2:26380,[::1]:26379/my-primary/2")
        #expect(try RedisConfiguration(url: c.redactedURL.replacingOccurrences(of: "***", with: "x")).sentinel == c.sentinel, "the redacted form parses back")
        #expect(c.displayEndpoint.contains("my-primary") && !c.description.contains("s3cret"))
        let plain = try RedisConfiguration(url: "redis+sentinel://127.0.0.1:26379/mymaster")
        #expect(plain.database == 0 && plain.sentinel?.nodes.count == 1)
    }

    @Test("an error about a URL with a password does not repeat the password")
    func redactedErrors() {
        do {
            _ = try RedisConfiguration(url: "redis://u:hunter2@host:99999")
            Issue.record("expected an error")
        } catch {
            #expect(!error.description.contains("hunter2"))
            #expect(error.description.contains("***"))
        }
    }

    @Test("passwords made of every URL delimiter never appear in an error, whether or not the URL parses")
    func redactionWithDelimiters() {
        let secrets = ["Sup3r/Secret", "a?b=c", "x#frag", "p@ss", "@@", "a:b:c", "[::1]", "%zz", "semi;colon", "sp ace", "q?x/y@z#w", ":", "/", "?"]
        let shapes = [
            "redis://u:%@host:6379", "redis://:%@host", "redis://u:%@host:6379/2", "redis+cluster://u:%@h1:7000,h2:7001",
            "redis+sentinel://u:%@s1:26379/mymaster", "unix://u:%@/tmp/redis.sock", "redis://u:%@host:99999", "redis://u:%@",
        ]
        for secret in secrets {
            for shape in shapes {
                let url = shape.replacingOccurrences(of: "%", with: secret)
                let redacted = RedisURLParser.redactForError(url)
                #expect(!redacted.contains(secret) || secret.count < 2, "redactForError(\(url)) = \(redacted)")
                do {
                    let c = try RedisConfiguration(url: url)
                    if secret.count >= 2 { #expect(!c.redactedURL.contains(secret), "\(url) → \(c.redactedURL)") }
                } catch {
                    if secret.count >= 2 { #expect(!error.description.contains(secret), "\(url) → \(error.description)") }
                }
            }
        }
        // The user's fix is named.
        #expect(throws: RedisError.self) { try RedisConfiguration(url: "redis://u:Sup3r/Secret@host:6379") }
        do { _ = try RedisConfiguration(url: "redis://u:Sup3r/Secret@host:6379") } catch {
            #expect(error.description.contains("percent-encode"), "\(error.description)")
        }
    }
}

@Suite("Retry backoff")
struct RetryBackoffTests {
    @Test("grows exponentially to the cap, jitter stays within [d/2, d]")
    func growth() {
        let b = RetryBackoff(base: .milliseconds(25), cap: .seconds(2))
        #expect(b.ceiling(attempt: 0) == .milliseconds(25))
        #expect(b.ceiling(attempt: 1) == .milliseconds(50))
        #expect(b.ceiling(attempt: 3) == .milliseconds(200))
        #expect(b.ceiling(attempt: 7) == .seconds(2))
        #expect(b.ceiling(attempt: 500) == .seconds(2))
        #expect(b.delay(attempt: 3, unit: 0) == .milliseconds(100))
        #expect(b.delay(attempt: 3, unit: 1) == .milliseconds(200))
        for n in 0..<40 {
            let d = b.delay(attempt: n)
            #expect(d >= b.ceiling(attempt: n) / 2 && d <= b.ceiling(attempt: n))
        }
    }
}

@Suite("Commands")
struct RedisCommandTests {
    @Test("arguments are packed binary-safe, in order")
    func packing() {
        let payload: [UInt8] = [0, 1, 0, 255, 10, 13]
        var c = RedisCommand("SET", "k", payload)
        c.append(42)
        c.append(-1.5)
        #expect(c.argumentCount == 5)
        #expect(c.name == "SET")
        #expect(c.argument(1) == Array("k".utf8))
        #expect(c.argument(2) == payload)
        #expect(c.argument(3) == Array("42".utf8))
        #expect(c.argument(4) == Array("-1.5".utf8))
        #expect(RedisCommand("AUTH", "user", "secret").description == "AUTH (2 arguments)")
        let empty = RedisCommand("SET", "k", "")
        #expect(empty.argument(2) == [])
    }
}
