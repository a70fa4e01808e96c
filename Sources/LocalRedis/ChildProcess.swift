import CJobQSpawn
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A child process started by `jobq_spawn` (the C shim every jobq spawn goes through: exactly the
/// descriptors given, a clean signal state). Its exit is reaped by `waitpid` on a thread of its
/// own.
public final class ChildProcess: Sendable {
    public let pid: Int32
    private let exitSignal = ExitSignal()
    private let status = Mutex<Int32?>(nil)

    public struct SpawnError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Starts `executable` with `arguments`; stdin from `inputPath` or /dev/null, stdout to
    /// `outputPath` (appended) or /dev/null, stderr to `errorPath` or with stdout. With
    /// `terminal` (the path of a pseudo-terminal's secondary side) stdin, stdout and stderr are
    /// that terminal instead, in a session of the child's own. `environment` nil = inherit.
    public init(
        executable: String, arguments: [String], environment: [String: String]? = nil, outputPath: String? = nil,
        errorPath: String? = nil, inputPath: String? = nil, terminal: String? = nil
    ) throws {
        var descriptors: [jobq_spawn_fd] = []
        func open(_ fd: Int32, _ path: String, _ flags: Int32) {
            descriptors.append(jobq_spawn_fd(child_fd: fd, parent_fd: -1, path: strdup(path), flags: flags, mode: 0o600))
        }
        func dup(_ from: Int32, to fd: Int32) { descriptors.append(jobq_spawn_fd(child_fd: fd, parent_fd: from, path: nil, flags: 0, mode: 0)) }
        defer { for d in descriptors { free(UnsafeMutableRawPointer(mutating: d.path)) } }
        if let terminal {
            open(0, terminal, O_RDWR)
            dup(0, to: 1)
            dup(0, to: 2)
        } else {
            open(0, inputPath ?? "/dev/null", O_RDONLY)
            open(1, outputPath ?? "/dev/null", O_WRONLY | O_CREAT | O_APPEND)
            if let errorPath { open(2, errorPath, O_WRONLY | O_CREAT | O_APPEND) } else { dup(1, to: 2) }
        }
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        let env = environment.map { $0.map { strdup("\($0.key)=\($0.value)") } + [nil] }
        defer { for p in env ?? [] { free(p) } }

        // Nothing else crosses (from fd 3 up): no Redis socket, pipe or file of ours.
        var pid: pid_t = 0
        let flags = terminal != nil ? JOBQ_SPAWN_NEW_SESSION : 0
        let rc: Int32 =
            if let env {
                jobq_spawn(&pid, executable, argv, env, descriptors, Int32(descriptors.count), 3, flags)
            } else {
                jobq_spawn(&pid, executable, argv, nil, descriptors, Int32(descriptors.count), 3, flags)
            }
        guard rc == 0 else {
            throw SpawnError(description: "cannot start \(executable): \(String(cString: strerror(rc)))")
        }
        self.pid = pid
        let reaper = Thread { [self] in
            var raw: Int32 = 0
            while waitpid(self.pid, &raw, 0) < 0 && errno == EINTR {}
            self.status.withLock { $0 = raw }
            self.exitSignal.fire()
        }
        reaper.name = "jobq-reap-\(pid)"
        reaper.start()
    }

    /// Sends a signal (no-op once the process has exited and been reaped).
    public func signal(_ signal: Int32) {
        if status.withLock({ $0 }) == nil { Glibc.kill(pid, signal) }
    }

    /// Waits for the exit; returns the raw wait status.
    @discardableResult
    public func wait() async -> Int32 {
        await exitSignal.wait()
        return status.withLock { $0 } ?? 0
    }

    public var hasExited: Bool { status.withLock { $0 } != nil }

    /// The raw wait status once the process has exited and been reaped.
    public var exitStatus: Int32? { status.withLock { $0 } }
}
