import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A child process started with `posix_spawn`, with a clean signal state: an empty signal mask
/// and default dispositions for every signal we ignore or handle. Spawned from a libdispatch
/// worker thread (all signals blocked there) a child would otherwise inherit the blocked mask and
/// never see SIGTERM. Its exit is reaped by `waitpid` on a thread of its own.
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
    public init(executable: String, arguments: [String], environment: [String: String]? = nil, outputPath: String? = nil,
                errorPath: String? = nil, inputPath: String? = nil, terminal: String? = nil) throws {
        var fileActions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&fileActions)
        defer { posix_spawn_file_actions_destroy(&fileActions) }
        if let terminal {
            posix_spawn_file_actions_addopen(&fileActions, 0, terminal, O_RDWR, 0)
            posix_spawn_file_actions_adddup2(&fileActions, 0, 1)
            posix_spawn_file_actions_adddup2(&fileActions, 0, 2)
        } else {
            posix_spawn_file_actions_addopen(&fileActions, 0, inputPath ?? "/dev/null", O_RDONLY, 0)
            let out = outputPath ?? "/dev/null"
            posix_spawn_file_actions_addopen(&fileActions, 1, out, O_WRONLY | O_CREAT | O_APPEND, 0o600)
            if let errorPath {
                posix_spawn_file_actions_addopen(&fileActions, 2, errorPath, O_WRONLY | O_CREAT | O_APPEND, 0o600)
            } else {
                posix_spawn_file_actions_adddup2(&fileActions, 1, 2)
            }
        }
        // Nothing else crosses: no Redis socket, pipe or file of ours stays open in the child.
        _ = posix_spawn_file_actions_addclosefrom_np(&fileActions, 3)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for s in [SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGCHLD, SIGUSR1, SIGUSR2] { sigaddset(&defaults, s) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | (terminal != nil ? spawnSetSID : 0)))

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        let env = environment.map { $0.map { strdup("\($0.key)=\($0.value)") } + [nil] }
        defer { env?.forEach { free($0) } }

        var pid: pid_t = 0
        let rc: Int32
        if let env {
            rc = posix_spawn(&pid, executable, &fileActions, &attributes, argv, env)
        } else {
            rc = posix_spawn(&pid, executable, &fileActions, &attributes, argv, environ)
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

/// glibc ≥ 2.34 (Debian 12 has 2.36) declares this only under _GNU_SOURCE, which Swift's Glibc
/// module does not define; the symbol itself is always exported.
@_silgen_name("posix_spawn_file_actions_addclosefrom_np")
private func posix_spawn_file_actions_addclosefrom_np(_ actions: UnsafeMutablePointer<posix_spawn_file_actions_t>, _ from: Int32) -> Int32

/// `POSIX_SPAWN_SETSID` (glibc ≥ 2.26), declared only under _GNU_SOURCE like the function above.
private let spawnSetSID: Int32 = 0x80
