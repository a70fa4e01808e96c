/// A `waitpid` status, decoded the way a shell reports it: the exit code of a process that
/// exited, 128 + the signal of one that was killed.
public struct WaitStatus: Sendable, Hashable, CustomStringConvertible {
    public let raw: Int32

    public init(_ raw: Int32) { self.raw = raw }

    /// The signal that ended the process, if one did (WTERMSIG).
    public var signal: Int32? { raw & 0x7f == 0 ? nil : raw & 0x7f }

    /// The exit code when it exited (WEXITSTATUS), else 128 + the signal.
    public var code: Int32 { signal.map { 128 + $0 } ?? (raw >> 8) & 0xff }

    public var description: String { signal.map { "signal \($0)" } ?? "exit code \(code)" }
}

extension ChildProcess {
    /// Waits for the exit and decodes it.
    public func waitStatus() async -> WaitStatus { WaitStatus(await wait()) }
}
