import Synchronization

/// Redis Cluster's key → slot mapping: CRC16 (XMODEM) of the key — or of the part between the
/// first `{` and the next `}` when that part is not empty (the hash tag) — modulo 16384.
package enum RedisClusterSlot {
    package static let count = 16384

    package static func of(_ key: some Collection<UInt8>) -> Int {
        let bytes = Array(key)
        if let open = bytes.firstIndex(of: UInt8(ascii: "{")),
            let close = bytes[(open + 1)...].firstIndex(of: UInt8(ascii: "}")), close > open + 1
        {
            return Int(crc16(bytes[(open + 1)..<close]) % UInt16(count))
        }
        return Int(crc16(bytes[...]) % UInt16(count))
    }

    package static func of(_ key: String) -> Int { of(Array(key.utf8)) }

    static func crc16(_ bytes: ArraySlice<UInt8>) -> UInt16 {
        var crc: UInt16 = 0
        for b in bytes {
            crc = (crc << 8) ^ table[Int((crc >> 8) ^ UInt16(b)) & 0xff]
        }
        return crc
    }

    /// CRC16-CCITT (XMODEM), polynomial 0x1021.
    private static let table: [UInt16] = (0..<256).map { i in
        var c = UInt16(i) << 8
        for _ in 0..<8 { c = (c & 0x8000) != 0 ? (c << 1) ^ 0x1021 : c << 1 }
        return c
    }
}

/// Routes commands to the primaries of a Redis Cluster (`docs/data-model.md`, `docs/client.md`): each command or script
/// call goes to the node owning its first key's slot (jobq's keys of one queue share a hash tag,
/// so a queue's scripts never span nodes); `MOVED` updates the slot map and resends, `ASK` sends
/// `ASKING` and the command once to the importing node; `TRYAGAIN`/`CLUSTERDOWN` are retried by
/// each connection like `BUSY`. Keyless commands go to the first primary.
package final class RedisClusterRouter: Sendable {
    let configuration: RedisConfiguration
    private let seeds: [RedisEndpoint]

    private struct State {
        /// Index into `primaries` per slot, -1 when not known.
        var slots = [Int16](repeating: -1, count: RedisClusterSlot.count)
        var primaries: [RedisEndpoint] = []
        var loops: [RedisEndpoint: RedisConnectionLoop] = [:]
        /// The host name each node announces (`cluster-announce-hostname`), from `CLUSTER SLOTS`.
        var hostnames: [RedisEndpoint: String] = [:]
        /// Connections replaced (see `refresh`), closed after a grace or with the router.
        var retired: [RedisConnectionLoop] = []
        var scripts: [RedisScript] = []
        var closed = false
    }
    private let state = Mutex(State())

    init(configuration: RedisConfiguration) {
        self.configuration = configuration
        self.seeds = configuration.clusterSeeds ?? [configuration.endpoint]
    }

    /// The connection to a node, made on first use (scripts loaded on it are registered, so a
    /// reconnect reloads them).
    func loop(for endpoint: RedisEndpoint) -> RedisConnectionLoop {
        state.withLock { s in
            if let loop = s.loops[endpoint] { return loop }
            // A short deadline per node: a dead primary fails fast here, and `execute` re-reads the
            // slot map and tries the new owner (a promoted replica) until the client's deadline.
            var node = configuration.node(endpoint)
            node.retryDeadline = min(configuration.retryDeadline, .seconds(1))
            // Over TLS, a node reached by address is verified (and SNI sent) by the host name it
            // announces, unless the settings name one for every node.
            if node.tls != nil, node.tls?.serverName == nil, let name = s.hostnames[endpoint] { node.tls?.serverName = name }
            let loop = RedisConnectionLoop(configuration: node, replyTimeout: configuration.commandTimeout, label: "jobq-redis-\(endpoint)")
            if !s.scripts.isEmpty { loop.register(s.scripts) }
            s.loops[endpoint] = loop
            return loop
        }
    }

    /// The primaries as last learned.
    var primaries: [RedisEndpoint] { state.withLock { $0.primaries } }

    /// Re-reads the slot map (`CLUSTER SLOTS`) from the first known node or seed that answers.
    func refresh() async throws(RedisError) {
        var lastError: RedisError?
        let (known, troubled) = state.withLock { s -> ([RedisEndpoint], Set<RedisEndpoint>) in
            (s.primaries, Set(s.loops.filter { $0.value.connectionProblem != nil }.keys))
        }
        var candidates: [RedisEndpoint] = []
        for node in known + seeds where !candidates.contains(node) { candidates.append(node) }
        candidates = candidates.filter { !troubled.contains($0) } + candidates.filter { troubled.contains($0) }
        for node in candidates {
            let reply: RedisReply
            do {
                reply = try await loop(for: node).submit(one: .command(RedisCommand("CLUSTER", "SLOTS")), idempotent: true).get()
            } catch {
                lastError = error
                continue
            }
            guard let ranges = reply.array, reply.errorMessage == nil else {
                lastError = RedisError(
                    .serverError, endpoint: node.description, detail: "CLUSTER SLOTS answered \(reply.errorMessage ?? "\(reply)"): is this a cluster node?")
                continue
            }
            var slots = [Int16](repeating: -1, count: RedisClusterSlot.count)
            var primaries: [RedisEndpoint] = []
            var hostnames: [RedisEndpoint: String] = [:]
            for range in ranges {
                guard let items = range.array, items.count >= 3, let low = items[0].int, let high = items[1].int,
                    let master = items[2].array, master.count >= 2, let port = master[1].int,
                    (0..<RedisClusterSlot.count).contains(low), (low..<RedisClusterSlot.count).contains(high)
                else { continue }
                var host = master[0].string ?? ""
                if host.isEmpty || host == "?" {
                    // An empty host means "the address you reached me on".
                    if case .tcp(let h, _) = node { host = h }
                }
                let endpoint = RedisEndpoint.tcp(host: host, port: port)
                if let name = Self.announcedHostname(master), name != host { hostnames[endpoint] = name }
                let index: Int
                if let i = primaries.firstIndex(of: endpoint) {
                    index = i
                } else {
                    primaries.append(endpoint)
                    index = primaries.count - 1
                }
                for slot in low...high { slots[slot] = Int16(index) }
            }
            guard !primaries.isEmpty else {
                lastError = RedisError(.serverError, endpoint: node.description, detail: "CLUSTER SLOTS listed no primaries")
                continue
            }
            let stale = state.withLock { s -> [RedisConnectionLoop] in
                s.slots = slots
                s.primaries = primaries
                s.hostnames.merge(hostnames) { _, new in new }
                // A connection made before its node's host name was known verified the address:
                // make it again with the name.
                guard configuration.tls != nil, configuration.tls?.serverName == nil else { return [] }
                var stale: [RedisConnectionLoop] = []
                for (endpoint, name) in hostnames {
                    if let loop = s.loops[endpoint], loop.configuration.tls?.serverName != name {
                        stale.append(loop)
                        s.loops[endpoint] = nil
                        s.retired.append(loop)
                    }
                }
                return stale
            }
            // Not at once: commands other tasks queued on the old connection (it may have worked,
            // verified by an IP the certificate also lists) finish there first; new ones go to
            // the new connection. `close()` closes what is still retired.
            if !stale.isEmpty {
                let grace = configuration.retryDeadline
                Task {
                    try? await Task.sleep(for: grace)
                    for loop in stale { await loop.close() }
                }
            }
            return
        }
        throw lastError ?? RedisError(.connectionFailed, endpoint: configuration.displayEndpoint, detail: "no cluster node answered")
    }

    /// The primary owning `slot` (after a refresh when the map does not know it).
    func node(forSlot slot: Int) async throws(RedisError) -> RedisEndpoint {
        if let known = known(slot) { return known }
        try await refresh()
        if let known = known(slot) { return known }
        throw RedisError(
            .unavailable, endpoint: configuration.displayEndpoint, detail: "no primary serves slot \(slot) (the cluster is down or being resharded)")
    }

    /// Re-reads the slot map in the background, at most one read at a time (for threads that
    /// cannot wait: a sharded subscriber that lost its node).
    package func refreshSoon() {
        guard !refreshing.exchange(true, ordering: .acquiringAndReleasing) else { return }
        Task {
            try? await Task.sleep(for: .milliseconds(50))
            try? await self.refresh()
            self.refreshing.store(false, ordering: .releasing)
        }
    }
    private let refreshing = Atomic<Bool>(false)

    /// The primary owning `slot` in the current map, if known (no I/O).
    package func known(_ slot: Int) -> RedisEndpoint? {
        state.withLock { s in
            let i = Int(s.slots[slot])
            return i >= 0 && i < s.primaries.count ? s.primaries[i] : nil
        }
    }

    private func firstPrimary() async throws(RedisError) -> RedisEndpoint {
        if let first = state.withLock({ $0.primaries.first }) { return first }
        try await refresh()
        guard let first = state.withLock({ $0.primaries.first }) else {
            throw RedisError(.unavailable, endpoint: configuration.displayEndpoint, detail: "the cluster lists no primaries")
        }
        return first
    }

    /// Sends the items, each to its slot's primary (items for one node in one flight, in order),
    /// following redirects; one reply per item, in order.
    func execute(_ items: [RedisConnectionLoop.Item], idempotent: Bool) async throws(RedisError) -> [RedisReply] {
        var replies = [RedisReply?](repeating: nil, count: items.count)
        var pending: [(index: Int, target: RedisEndpoint, asking: Bool)] = []
        for (i, item) in items.enumerated() {
            let target: RedisEndpoint
            if let key = Self.routingKey(item) {
                target = try await node(forSlot: RedisClusterSlot.of(key))
            } else if case .command(let c) = item, c.name.uppercased() == "WAIT", let previous = pending.last {
                // WAIT covers the writes before it on its connection: it goes where they went.
                target = previous.target
            } else {
                target = try await firstPrimary()
            }
            pending.append((i, target, false))
        }
        var budget = ClusterRetryBudget(deadline: .now + configuration.retryDeadline)
        let policy = RedisRetryPolicy(backoff: configuration.backoff, endpoint: configuration.displayEndpoint)
        while !pending.isEmpty {
            let groups = Dictionary(grouping: pending, by: { "\($0.target)|\($0.asking)" })
            let results = await withTaskGroup(of: ([(index: Int, target: RedisEndpoint, asking: Bool)], Result<[RedisReply], RedisError>).self) { group in
                for (_, members) in groups {
                    let loop = self.loop(for: members[0].target)
                    var flight: [RedisConnectionLoop.Item] = []
                    for m in members {
                        if m.asking { flight.append(.command(RedisCommand("ASKING"))) }
                        flight.append(items[m.index])
                    }
                    group.addTask { (members, await loop.submit(flight, idempotent: idempotent)) }
                }
                var out: [([(index: Int, target: RedisEndpoint, asking: Bool)], Result<[RedisReply], RedisError>)] = []
                for await r in group { out.append(r) }
                return out
            }
            var next: [(index: Int, target: RedisEndpoint, asking: Bool)] = []
            var remapped = false
            var unreachable: [Int] = []
            for (members, result) in results {
                let flightReplies: [RedisReply]
                switch result {
                case .success(let r):
                    flightReplies = r
                case .failure(let error):
                    // The node is down (a primary killed, a failover under way): nothing was sent,
                    // or an idempotent flight may be sent again. Re-read the map and retry.
                    guard budget.mayRetry(after: error, idempotent: idempotent, now: .now) else { throw error }
                    unreachable += members.map(\.index)
                    continue
                }
                var position = 0
                for m in members {
                    if m.asking { position += 1 }  // ASKING's own +OK
                    let reply = flightReplies[position]
                    position += 1
                    // The connection's thread has waited out BUSY/LOADING/TRYAGAIN and the like
                    // already; what is left for the router is a redirect.
                    guard case .error = reply,
                        case .redirect(let endpoint, let asking, let slot) = policy.decide(
                            reply, sentAsEvalSHA: false, retries: 0, deadline: budget.deadline, now: .now, cluster: true)
                    else {
                        replies[m.index] = reply
                        continue
                    }
                    if !asking {
                        // MOVED: the slot lives elsewhere now. (ASK: this one command goes to
                        // the importing node, the map stays.)
                        remap(slot: slot, to: endpoint)
                        remapped = true
                    }
                    next.append((m.index, endpoint, asking))
                }
            }
            if !next.isEmpty, let error = budget.redirected(endpoint: configuration.displayEndpoint) { throw error }
            if configuration.tls != nil, configuration.tls?.serverName == nil,
                next.contains(where: { m in state.withLock { $0.loops[m.target] == nil && $0.hostnames[m.target] == nil } })
            {
                // A redirect to a node not met yet, over TLS: read the map first, so the new
                // connection is verified by the host name the node announces.
                try? await refresh()
            } else if remapped {
                Task { try? await self.refresh() }
            }
            if !unreachable.isEmpty {
                try? await Task.sleep(for: budget.unreachableDelay())
                try? await refresh()
                for index in unreachable {
                    let target: RedisEndpoint
                    if let key = Self.routingKey(items[index]) {
                        target = try await node(forSlot: RedisClusterSlot.of(key))
                    } else {
                        target = try await firstPrimary()
                    }
                    next.append((index, target, false))
                }
            }
            pending = next
        }
        return replies.map { $0 ?? .null }
    }

    /// Loads scripts on every primary now, and on every node connected later.
    func load(_ scripts: [RedisScript]) async throws(RedisError) {
        if state.withLock({ $0.primaries.isEmpty }) { try await refresh() }
        let nodes = state.withLock { s -> [RedisEndpoint] in
            s.scripts += scripts
            for loop in s.loops.values { loop.register(scripts) }
            return s.primaries
        }
        for node in nodes {
            let replies = try await loop(for: node).submit(scripts.map { .command(RedisCommand("SCRIPT", "LOAD", $0.source)) }, idempotent: true).get()
            for (script, reply) in zip(scripts, replies) {
                if let message = reply.errorMessage {
                    throw RedisError(.serverError, endpoint: node.description, detail: "\(script.name) does not load: \(message)")
                }
                if let sha = reply.string { script.learn(sha: sha) }
            }
        }
    }

    var connectionProblem: RedisError? {
        state.withLock { Array($0.loops.values) }.lazy.compactMap(\.connectionProblem).first
    }

    func close() async {
        let loops = state.withLock { s -> [RedisConnectionLoop] in
            s.closed = true
            defer { s.retired = [] }
            return Array(s.loops.values) + s.retired
        }
        for loop in loops { await loop.close() }
    }

    private func remap(slot: Int, to endpoint: RedisEndpoint) {
        state.withLock { s in
            let index: Int
            if let i = s.primaries.firstIndex(of: endpoint) {
                index = i
            } else {
                s.primaries.append(endpoint)
                index = s.primaries.count - 1
            }
            s.slots[slot] = Int16(index)
        }
    }

    /// A node entry of `CLUSTER SLOTS` is `[address, port, id, [name, value, …]]` since Redis 7;
    /// the metadata may carry `hostname` (`cluster-announce-hostname`).
    static func announcedHostname(_ node: [RedisReply]) -> String? {
        guard node.count >= 4, let metadata = node[3].array else { return nil }
        var i = 0
        while i + 1 < metadata.count {
            if metadata[i].string == "hostname", let name = metadata[i + 1].string, !name.isEmpty { return name }
            i += 2
        }
        return nil
    }

    /// The key that decides where an item goes: a script's first key, or a command's first key
    /// argument; nil for keyless commands.
    package static func routingKey(_ item: RedisConnectionLoop.Item) -> [UInt8]? {
        switch item {
        case .script(_, let tail):
            // numkeys, keys…, args…
            guard tail.argumentCount >= 2, let n = Int(String(decoding: tail.argument(0), as: UTF8.self)), n > 0 else { return nil }
            return tail.argument(1)
        case .command(let command):
            let name = command.name.uppercased()
            switch name {
            case "PING", "INFO", "CLIENT", "CONFIG", "SCRIPT", "CLUSTER", "SCAN", "DBSIZE", "FLUSHALL", "FLUSHDB", "SELECT", "AUTH", "HELLO",
                "TIME", "ACL", "SLOWLOG", "DEBUG", "COMMAND", "ECHO", "WAIT", "ASKING", "READONLY", "PUBLISH", "MULTI", "EXEC", "ROLE", "LASTSAVE":
                return nil
            case "EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO":
                guard command.argumentCount >= 4, let n = Int(String(decoding: command.argument(2), as: UTF8.self)), n > 0 else { return nil }
                return command.argument(3)
            case "XREAD", "XREADGROUP":
                for i in 1..<command.argumentCount where String(decoding: command.argument(i), as: UTF8.self).uppercased() == "STREAMS" {
                    return i + 1 < command.argumentCount ? command.argument(i + 1) : nil
                }
                return nil
            default:
                return command.argumentCount >= 2 ? command.argument(1) : nil
            }
        }
    }
}
