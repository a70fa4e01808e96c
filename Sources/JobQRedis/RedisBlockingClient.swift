/// A dedicated connection for blocking commands (`BZPOPMIN`, `BLMOVE`, `XREAD BLOCK`…), on its own
/// thread, so a long wait never holds up ordinary commands nor Swift's cooperative pool.
///
/// Its socket timeout is the largest block timeout plus a margin of max(1 s, 3 server ticks), so a
/// quiet wait is never mistaken for a dead connection (a read timeout would break the connection
/// and could lose what the server popped: `docs/client.md`). It is woken early with ``wake()``, which
/// sends `CLIENT UNBLOCK <id> TIMEOUT` from the `control` client: the blocked command then returns
/// as if it timed out (`.null`). A wake that arrives while nothing is blocked makes the next
/// blocking command return `.null` at once, so a wake-up is never lost.
package final class RedisBlockingClient: Sendable {
    /// The longest block timeout a command may ask for.
    package let maxBlockTimeout: Duration
    private let loop: RedisConnectionLoop
    private let control: RedisClient
    /// A control client made for this connection alone (cluster mode), closed with it.
    private let ownedControl: RedisClient?

    /// - Parameters:
    ///   - control: an ordinary client on the same server, used to send `CLIENT UNBLOCK`.
    ///   - maxBlockTimeout: the largest block timeout any command will use (default 5 s).
    ///   - serverTick: the server's tick (1/hz); Redis rounds block timeouts to it.
    package init(configuration: RedisConfiguration, control: RedisClient, maxBlockTimeout: Duration = .seconds(5), serverTick: Duration = .milliseconds(100)) {
        self.maxBlockTimeout = maxBlockTimeout
        self.control = control
        self.ownedControl = nil
        let margin = max(Duration.seconds(1), serverTick * 3)
        self.loop = RedisConnectionLoop(configuration: configuration, replyTimeout: maxBlockTimeout + margin, label: "jobq-redis-blocking")
    }

    private init(node: RedisConfiguration, maxBlockTimeout: Duration, serverTick: Duration) {
        self.maxBlockTimeout = maxBlockTimeout
        let control = RedisClient(configuration: node)
        self.control = control
        self.ownedControl = control
        let margin = max(Duration.seconds(1), serverTick * 3)
        self.loop = RedisConnectionLoop(configuration: node, replyTimeout: maxBlockTimeout + margin, label: "jobq-redis-blocking")
    }

    /// A blocking connection on the node that holds `key`: the configured server, or in cluster
    /// mode the primary owning the key's slot, woken through a control connection to that same
    /// node (`CLIENT UNBLOCK` ids are per node). After a `MOVED` reply, make a new one.
    package static func onNode(
        of key: String, client: RedisClient, maxBlockTimeout: Duration = .seconds(5),
        serverTick: Duration = .milliseconds(100)
    ) async throws(RedisError) -> RedisBlockingClient {
        guard client.configuration.isCluster else {
            return RedisBlockingClient(configuration: client.configuration, control: client, maxBlockTimeout: maxBlockTimeout, serverTick: serverTick)
        }
        var node = client.configuration.node(try await client.endpoint(forKey: key))
        node.retryDeadline = min(node.retryDeadline, .seconds(1))  // a dead node is given up fast, then re-resolved
        return RedisBlockingClient(node: node, maxBlockTimeout: maxBlockTimeout, serverTick: serverTick)
    }

    /// Sends a blocking command and waits for its reply (`.null` on timeout or ``wake()``).
    /// Cancelling the calling task wakes it.
    /// - Parameter idempotent: resend after a reconnect when the connection died mid-wait. Popping
    ///   a wake-up marker is safe to repeat; popping a job is not.
    package func send(_ command: RedisCommand, idempotent: Bool = true) async throws(RedisError) -> RedisReply {
        let result = await withTaskCancellationHandler {
            await loop.submit(one: .command(command), idempotent: idempotent, wakeable: true)
        } onCancel: {
            self.wake()
        }
        return try result.get()
    }

    /// Makes the blocked (or next) blocking command return `.null` now.
    ///
    /// Never blocks. `CLIENT UNBLOCK` answers 0 when the command was sent but the server has not
    /// blocked on it yet; the wake is then repeated (up to 50 times, one round trip each) while
    /// that same command is still on the wire.
    package func wake() {
        guard let target = loop.requestWake(), target.clientID != 0 else { return }
        unblock(target, triesLeft: 50)
    }

    private func unblock(_ target: (clientID: Int64, flight: UInt64), triesLeft: Int) {
        Task {
            let reply = try? await control.send(RedisCommand("CLIENT", "UNBLOCK", target.clientID, "TIMEOUT"), idempotent: true)
            if reply?.int == 0, triesLeft > 0, loop.stillBlocked(flight: target.flight) {
                unblock(target, triesLeft: triesLeft - 1)
            }
        }
    }

    /// `CLIENT ID` of the blocking connection (0 while disconnected).
    package var clientID: Int64 { loop.clientID }

    /// Wakes any blocked command and closes the connection.
    package func close() async {
        wake()
        await loop.close()
        await ownedControl?.close()
    }
}
