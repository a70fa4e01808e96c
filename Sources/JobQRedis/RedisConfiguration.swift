/// How to reach and talk to one Redis server.
///
/// Build it from a URL (`redis://[user@]host:port/db`, `rediss://` for TLS,
/// `unix:///path/to/redis.sock`) or field by field. The password is kept out of every description, error and log line.
public struct RedisConfiguration: Sendable, CustomStringConvertible {
    public var endpoint: RedisEndpoint
    /// ACL user name; nil means the `default` user.
    public var username: String?
    /// Sent with `AUTH` after every connect. Never printed.
    public var password: String?
    /// Selected with `SELECT` after every connect when not 0.
    public var database: Int = 0
    /// How long one connect attempt may take.
    public var connectTimeout: Duration = .seconds(5)
    /// Socket timeout for an ordinary command's reply. A blocking connection derives its own from
    /// its block timeout (see ``RedisBlockingClient``).
    public var commandTimeout: Duration = .seconds(10)
    /// How long a command may wait through a server that is down, `LOADING`, `BUSY`, `TRYAGAIN`,
    /// `CLUSTERDOWN` or `MASTERDOWN` before it fails with ``RedisError/Code-swift.struct/unavailable``.
    public var retryDeadline: Duration = .seconds(30)
    /// Delay between reconnect attempts and between retries of a busy server.
    public var backoff: RetryBackoff = RetryBackoff(base: .milliseconds(25), cap: .seconds(2))
    /// Connections in a ``RedisClient`` pool. One connection already pipelines concurrent callers;
    /// more help when some commands are slow (large scripts) and others must not queue behind them.
    public var connectionCount: Int = 1
    /// `CLIENT SETNAME` after every connect, so `CLIENT LIST` shows who is who.
    public var clientName: String?
    /// TLS on every connection (set by a `rediss` URL); nil: plain TCP. In Sentinel mode this is
    /// for the data nodes; the sentinels have their own (``RedisSentinelSettings/tls``).
    public var tls: RedisTLS?

    public init(endpoint: RedisEndpoint, username: String? = nil, password: String? = nil, database: Int = 0) {
        self.endpoint = endpoint
        self.username = username
        self.password = password
        self.database = database
    }

    /// Parses `redis://[user[:password]@]host[:port][/db]` (IPv6 hosts in brackets; `rediss://`
    /// for TLS, which sets ``tls`` to verified TLS with the system trust store) or
    /// `unix://[user[:password]@]/path/to/socket[?db=N]`. User and password may be percent-encoded.
    /// - Throws: ``RedisError/Code-swift.struct/invalidURL`` naming what is wrong; the message never
    ///   repeats the password.
    public init(url: String) throws(RedisError) {
        self = try RedisURLParser.parse(url)
    }

    /// Redis Cluster: the seed nodes (`redis+cluster://h1:p1,h2:p2`). The client learns the slot map
    /// from them (`CLUSTER SLOTS`) and sends each command to the primary owning its key's slot.
    public var clusterSeeds: [RedisEndpoint]?

    /// True in cluster mode.
    public var isCluster: Bool { clusterSeeds != nil }

    /// Redis Sentinel (`redis+sentinel://s1:26379,s2:26379/mymaster`): every connection asks the
    /// sentinels for the primary's address when it connects, checks with `ROLE` that it reached a
    /// primary, and connects again (asking again) after `READONLY`, a dead connection, or a
    /// `+switch-master` announcement. `endpoint` is then only the first sentinel.
    public var sentinel: RedisSentinelSettings?

    /// True in Sentinel mode.
    public var isSentinel: Bool { sentinel != nil }

    /// A copy for one node (cluster mode off), keeping user, password and timeouts.
    public func node(_ endpoint: RedisEndpoint) -> RedisConfiguration {
        var copy = self
        copy.endpoint = endpoint
        copy.clusterSeeds = nil
        return copy
    }

    /// True when the URL this came from (or the fields) carry a password.
    public var hasPassword: Bool { password != nil }

    /// The URL with the password replaced by `***` (safe for logs).
    public var redactedURL: String {
        var userinfo = ""
        if username != nil || password != nil {
            userinfo = (username.map(RedisURLParser.percentEncode) ?? "") + (password != nil ? ":***" : "") + "@"
        }
        let s = tls != nil ? "s" : ""
        if let clusterSeeds {
            return "redis\(s)+cluster://\(userinfo)" + clusterSeeds.map(\.description).joined(separator: ",")
        }
        if let sentinel {
            return "redis\(s)+sentinel://\(userinfo)" + sentinel.nodes.map(\.description).joined(separator: ",")
                + "/" + RedisURLParser.percentEncode(sentinel.masterName) + (database != 0 ? "/\(database)" : "")
        }
        switch endpoint {
        case .tcp:
            return "redis\(s)://\(userinfo)\(endpoint)" + (database != 0 ? "/\(database)" : "")
        case .unix(let path):
            return "unix://\(userinfo)\(path)" + (database != 0 ? "?db=\(database)" : "")
        }
    }

    /// Where, with the user if any: used in error messages.
    public var displayEndpoint: String {
        var place = clusterSeeds.map { "cluster " + $0.map(\.description).joined(separator: ",") } ?? endpoint.description
        if let sentinel {
            place = "primary \(sentinel.masterName) of sentinels " + sentinel.nodes.map(\.description).joined(separator: ",")
        }
        if let username { return "\(place) (user \(username))" }
        return place
    }

    public var description: String { redactedURL }
}

/// Where the sentinels are and which primary to ask them for.
public struct RedisSentinelSettings: Sendable, Hashable {
    /// The name the sentinels monitor the primary under (`sentinel monitor <name> …`).
    public var masterName: String
    /// The sentinels (at least one; all are tried in turn).
    public var nodes: [RedisEndpoint]
    /// ACL user for the sentinels themselves (`sentinel sentinel-user`); nil: none.
    public var username: String?
    /// Password for the sentinels themselves (`requirepass` in sentinel.conf); nil: no `AUTH`.
    /// The URL's password is for the data nodes, not this.
    public var password: String?
    /// TLS to the sentinels (a `rediss+sentinel` URL sets it, like the data nodes'); nil: plain.
    public var tls: RedisTLS?

    public init(masterName: String, nodes: [RedisEndpoint], username: String? = nil, password: String? = nil) {
        self.masterName = masterName
        self.nodes = nodes
        self.username = username
        self.password = password
    }
}

/// Capped exponential backoff with jitter: attempt n waits `d/2 + U[0, d/2]` with
/// `d = min(cap, base · 2^n)`, so many clients reconnecting at once spread out.
public struct RetryBackoff: Sendable, Hashable {
    public var base: Duration
    public var cap: Duration

    public init(base: Duration, cap: Duration) {
        self.base = base
        self.cap = cap
    }

    /// The un-jittered delay of attempt `n` (0-based).
    public func ceiling(attempt n: Int) -> Duration {
        let factor = 1 << min(max(n, 0), 30)
        let d = base * factor
        return d < cap ? d : cap
    }

    /// The delay before attempt `n`, jittered with `unit` ∈ [0, 1] (random in production).
    public func delay(attempt n: Int, unit: Double = Double.random(in: 0...1)) -> Duration {
        let d = ceiling(attempt: n)
        return d / 2 + (d / 2) * min(max(unit, 0), 1)
    }
}

extension Duration {
    /// Whole milliseconds, rounded up, at least 0.
    package var milliseconds: Int {
        let (s, atto) = components
        let ms = s * 1000 + (atto + 999_999_999_999_999) / 1_000_000_000_000_000
        return Int(max(ms, 0))
    }

    var seconds: Double {
        let (s, atto) = components
        return Double(s) + Double(atto) / 1e18
    }
}
