import Synchronization

/// A Lua script run with `EVALSHA`, falling back to `EVAL` on `NOSCRIPT`.
///
/// The SHA1 is learned from the server (`SCRIPT LOAD`), which is the authority on it: a client
/// loads its scripts when a connection is made (``RedisClient/load(_:)``) and after a reconnect,
/// so pipelines of `EVALSHA` do not meet `NOSCRIPT`. A script whose SHA is not known yet is sent
/// with `EVAL` (the server caches it) and its SHA is fetched in the same flight.
package final class RedisScript: Sendable, Hashable, CustomStringConvertible {
    /// A name for logs and errors (the file name without extension, e.g. `addJob-9`).
    package let name: String
    package let source: String
    /// The number of KEYS every call passes, when fixed (checked before sending).
    package let keyCount: Int?
    private let shaBox = Mutex<String?>(nil)

    package init(name: String, source: String, keyCount: Int? = nil) {
        self.name = name
        self.source = source
        self.keyCount = keyCount
    }

    /// The SHA1 the server reported, once known.
    package var sha: String? { shaBox.withLock { $0 } }

    func learn(sha: String) { shaBox.withLock { $0 = sha } }

    package static func == (a: RedisScript, b: RedisScript) -> Bool { a === b }
    package func hash(into hasher: inout Hasher) { hasher.combine(ObjectIdentifier(self)) }
    package var description: String { "script \(name)" }
}
