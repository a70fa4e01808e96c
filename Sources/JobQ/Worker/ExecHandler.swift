import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A handler that runs a program for each job (DESIGN §8), for jobs written in any language.
///
/// - The payload arrives on **stdin**; stdout and stderr are captured (the last 64 KiB become the
///   failure details).
/// - **fd 3** carries protocol lines from the program: `progress <percent> [message]`,
///   `checkpoint <base64>`, `result <base64>`.
/// - Environment: an allow-list of the worker's (`PATH`, `HOME`, `LANG`, `LC_ALL`, `TZ`, `TMPDIR`,
///   `USER`) plus `JOBQ_JOB_ID`, `JOBQ_JOB_NAME`, `JOBQ_QUEUE_NAME`, `JOBQ_ATTEMPT`,
///   `JOBQ_EXECUTION_ID` and `JOBQ_JOB_CHECKPOINT_FILE` (a 0600 file holding the last checkpoint).
///   Never the worker's Redis settings.
/// - Exit 0: completed. Exit ``noRetryExitCode`` (100): failed, not retried. Any other exit or a
///   signal: a failed attempt (retried while attempts remain).
/// - Cancel, timeout, shutdown: SIGTERM to the program's process group, SIGKILL after
///   ``killAfter`` (10 s).
///
/// The program starts in a process group of its own with an empty signal mask and default
/// signal dispositions (so `yes | head -1` ends). It is spawned with `posix_spawn` directly:
/// swift-subprocess 1.0 closes every descriptor above 2 in the child on Linux, so it cannot hand
/// the protocol pipe to fd 3.
public struct ExecHandler: Sendable {
    public var executable: String
    public var arguments: [String]
    public var inheritedEnvironment = ["PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "USER"]
    public var killAfter: Duration = .seconds(10)
    public var outputLimit = 64 << 10
    public static let noRetryExitCode: Int32 = 100

    public init(executable: String, arguments: [String] = []) {
        self.executable = executable
        self.arguments = arguments
    }

    struct ExitFailure: Error, CustomStringConvertible {
        let description: String
    }

    public var handler: JobHandlers.Handler {
        let spec = self
        return { job, context in try await spec.run(job, context) }
    }

    func run(_ job: Job, _ context: JobContext) async throws -> [UInt8] {
        // The last checkpoint, in a file only this user can read, in this process's own
        // directory (removed when the worker stops; left by a killed worker, it is removed by
        // the next worker to start on the machine).
        let checkpointPath = ExecScratch.directory() + "/checkpoint-\(context.executionID)"
        let fd = open(checkpointPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        if fd >= 0 {
            if let bytes = context.lastCheckpoint { _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } }
            close(fd)
        }
        defer { unlink(checkpointPath) }

        var environment: [String: String] = [:]
        let own = ProcessInfo.processInfo.environment
        for key in inheritedEnvironment { if let v = own[key] { environment[key] = v } }
        environment["JOBQ_JOB_ID"] = job.id
        environment["JOBQ_JOB_NAME"] = job.name
        environment["JOBQ_QUEUE_NAME"] = job.queue
        environment["JOBQ_ATTEMPT"] = String(job.attemptsMade)
        environment["JOBQ_EXECUTION_ID"] = context.executionID
        environment["JOBQ_JOB_CHECKPOINT_FILE"] = checkpointPath

        let process = try SpawnedProgram(executable: executable, arguments: arguments, environment: environment,
                                          stdin: job.payload.bytes, outputLimit: outputLimit, owner: context.workerID) { line in
            Self.handleProtocol(line, context: context)
        }
        context.onCancel { [killAfter] _ in process.terminate(killAfter: killAfter) }
        let status = await process.wait()
        await process.protocolDone()
        let output = process.output
        if status.exited && status.code == 0 {
            return process.result ?? []
        }
        if let reason = context.cancellationReason {
            throw JobCancelledError(reason: reason)
        }
        let tail = String(decoding: output.suffix(2048), as: UTF8.self)
        if status.exited && status.code == Self.noRetryExitCode {
            throw UnrecoverableError("\(executable) exited with \(Self.noRetryExitCode) (no retry); output: \(tail)", reason: "exitCode\(Self.noRetryExitCode)")
        }
        let how = status.exited ? "exited with \(status.code)" : "was killed by signal \(status.signal)"
        throw ExitFailure(description: "\(executable) \(how); output: \(tail)")
    }

    /// One line from fd 3.
    static func handleProtocol(_ line: String, context: JobContext) {
        switch ExecProtocolLine(parsing: line) {
        case .progress(let percent, let message):
            context.progress(percent: percent, message: message)
        case .checkpoint(let bytes):
            Task { try? await context.checkpoint(bytes) }
        case nil:
            context.logger.debug("unknown or malformed protocol line from the program: \(line.prefix(200))")
        }
    }
}

/// A line of the exec protocol (fd 3): `progress <percent 0–100> [message]` or
/// `checkpoint <base64>`. Anything else is nil (ignored, logged at debug).
public enum ExecProtocolLine: Sendable, Hashable {
    case progress(percent: Double, message: String)
    case checkpoint([UInt8])

    public init?(parsing line: String) {
        let parts = line.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: true).map(String.init)
        guard let verb = parts.first else { return nil }
        switch verb {
        case "progress":
            guard parts.count >= 2, let percent = Double(parts[1]), percent.isFinite, (0...100).contains(percent) else { return nil }
            self = .progress(percent: percent, message: parts.count > 2 ? parts[2] : "")
        case "checkpoint":
            guard parts.count >= 2, let data = Data(base64Encoded: parts[1]) else { return nil }
            self = .checkpoint(Array(data))
        default:
            return nil
        }
    }
}

/// A program started for one job: stdin fed from memory, stdout+stderr captured (bounded), fd 3
/// read line by line, its own process group, reaped by `waitpid` on a thread.
final class SpawnedProgram: Sendable {
    struct Status: Sendable {
        var exited: Bool
        var code: Int32
        var signal: Int32
    }

    let pid: pid_t
    /// The worker that started it: a worker does not exit while a program it started lives.
    let owner: String
    private let state = Mutex<(status: Int32?, output: [UInt8], result: [UInt8]?, waiters: [CheckedContinuation<Void, Never>], readersLeft: Int, readerWaiters: [CheckedContinuation<Void, Never>])>((nil, [], nil, [], 2, []))
    /// When SIGKILL is due (set by the first ``terminate(killAfter:)``).
    private let killAt = Mutex<ContinuousClock.Instant?>(nil)

    /// Programs not yet reaped, by owner (worker id) and pid.
    private static let live = Mutex<[String: [pid_t: SpawnedProgram]]>([:])

    init(executable: String, arguments: [String], environment: [String: String], stdin input: [UInt8], outputLimit: Int,
         owner: String = "", onProtocolLine: @escaping @Sendable (String) -> Void) throws {
        self.owner = owner
        func makePipe() throws -> (read: Int32, write: Int32) {
            var fds: [Int32] = [0, 0]
            guard jobq_pipe2(&fds, O_CLOEXEC) == 0 else { throw ExecHandler.ExitFailure(description: "pipe: \(String(cString: strerror(errno)))") }
            return (fds[0], fds[1])
        }
        let stdinPipe = try makePipe()
        let outputPipe = try makePipe()
        let protocolPipe = try makePipe()

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, stdinPipe.read, 0)
        posix_spawn_file_actions_adddup2(&actions, outputPipe.write, 1)
        posix_spawn_file_actions_adddup2(&actions, outputPipe.write, 2)
        posix_spawn_file_actions_adddup2(&actions, protocolPipe.write, 3)
        _ = jobq_addclosefrom(&actions, 4)

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
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        let env = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for p in env { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, executable, &actions, &attributes, argv, env)
        close(stdinPipe.read)
        close(outputPipe.write)
        close(protocolPipe.write)
        guard rc == 0 else {
            close(stdinPipe.write)
            close(outputPipe.read)
            close(protocolPipe.read)
            throw UnrecoverableError("cannot start \(executable): \(String(cString: strerror(rc)))", reason: "execFailed")
        }
        self.pid = pid
        Self.live.withLock { $0[owner, default: [:]][pid] = self }

        // Feed stdin, then close it (a program that does not read gets EPIPE: SIGPIPE is ignored here).
        let feeder = Thread {
            input.withUnsafeBytes { raw in
                var offset = 0
                while offset < raw.count {
                    let n = write(stdinPipe.write, raw.baseAddress! + offset, raw.count - offset)
                    if n < 0 { if errno == EINTR { continue }; break }
                    offset += n
                }
            }
            close(stdinPipe.write)
        }
        feeder.start()
        let outputReader = Thread { [self] in
            var buffer = [UInt8](repeating: 0, count: 16 << 10)
            while true {
                let n = read(outputPipe.read, &buffer, buffer.count)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                state.withLock { s in
                    s.output.append(contentsOf: buffer[0..<n])
                    if s.output.count > outputLimit { s.output.removeFirst(s.output.count - outputLimit) }
                }
            }
            close(outputPipe.read)
            readerFinished()
        }
        outputReader.start()
        let protocolReader = Thread { [self] in
            var pending: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 16 << 10)
            func line(_ bytes: ArraySlice<UInt8>) {
                let text = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                if text.hasPrefix("result ") {
                    if let data = Data(base64Encoded: String(text.dropFirst(7))) {
                        state.withLock { $0.result = Array(data) }
                    }
                } else if !text.isEmpty {
                    onProtocolLine(text)
                }
            }
            while true {
                let n = read(protocolPipe.read, &buffer, buffer.count)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                pending.append(contentsOf: buffer[0..<n])
                while let newline = pending.firstIndex(of: 10) {
                    line(pending[..<newline])
                    pending.removeSubrange(...newline)
                }
                if pending.count > 4 << 20 { pending.removeAll() }   // a runaway line
            }
            if !pending.isEmpty { line(pending[...]) }
            close(protocolPipe.read)
            readerFinished()
        }
        protocolReader.start()
        let childPID = pid
        let reaper = Thread { [self] in
            var raw: Int32 = 0
            while waitpid(childPID, &raw, 0) < 0 && errno == EINTR {}
            let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
                s.status = raw
                defer { s.waiters = [] }
                return s.waiters
            }
            Self.live.withLock { all in
                all[owner]?[childPID] = nil
                if all[owner]?.isEmpty == true { all[owner] = nil }
            }
            for w in waiters { w.resume() }
        }
        reaper.start()
    }

    /// SIGTERM to the process group now, SIGKILL `killAfter` later if it still runs. Only the
    /// first call counts.
    func terminate(killAfter: Duration) {
        let first = killAt.withLock { k -> Bool in
            guard k == nil else { return false }
            k = .now + killAfter
            return true
        }
        guard first else { return }
        signalGroup(SIGTERM)
        Task {
            try? await Task.sleep(for: killAfter)
            self.signalGroup(SIGKILL)
        }
    }

    var hasExited: Bool { state.withLock { $0.status != nil } }

    /// Ends every program `owner` started that still runs and waits until each is reaped: the
    /// ones already told to stop keep their SIGKILL deadline, the others get SIGTERM now and
    /// SIGKILL `killAfter` later. Returns how many were still running. Called by a stopping
    /// worker, so no program of it outlives it (its job may already run elsewhere).
    static func endAll(owner: String, killAfter: Duration) async -> Int {
        let programs = live.withLock { Array(($0[owner] ?? [:]).values) }
        for program in programs { program.terminate(killAfter: killAfter) }
        for program in programs {
            let deadline = (program.killAt.withLock { $0 } ?? .now) + .seconds(5)
            let race = OneShot<Bool>()
            let waiter = Task {
                _ = await program.wait()
                race.settle(true)
            }
            let timer = Task {
                try? await Task.sleep(until: deadline, clock: .continuous)
                race.settle(false)
            }
            if await race.value() == false {
                // SIGKILL was sent and 5 s passed: the process is stuck in the kernel (D state).
                program.signalGroup(SIGKILL)
            }
            timer.cancel()
            _ = waiter
        }
        return programs.count
    }

    /// How many programs `owner` started are still running.
    static func liveCount(owner: String) -> Int { live.withLock { $0[owner]?.count ?? 0 } }

    private func readerFinished() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.readersLeft -= 1
            guard s.readersLeft == 0 else { return [] }
            defer { s.readerWaiters = [] }
            return s.readerWaiters
        }
        for w in waiters { w.resume() }
    }

    /// Signals the program's whole process group (no-op once it has been reaped).
    func signalGroup(_ signal: Int32) {
        if state.withLock({ $0.status }) == nil { kill(-pid, signal) }
    }

    func wait() async -> Status {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let done = state.withLock { s -> Bool in
                if s.status != nil { return true }
                s.waiters.append(c)
                return false
            }
            if done { c.resume() }
        }
        let raw = state.withLock { $0.status } ?? 0
        let exited = raw & 0x7f == 0
        return Status(exited: exited, code: exited ? (raw >> 8) & 0xff : -1, signal: exited ? 0 : raw & 0x7f)
    }

    /// Waits until both readers hit end of file (bounded: a grandchild holding the pipes open
    /// does not hold the job forever).
    func protocolDone() async {
        let race = OneShot<Bool>()
        let waiter = Task {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let done = state.withLock { s -> Bool in
                    if s.readersLeft == 0 { return true }
                    s.readerWaiters.append(c)
                    return false
                }
                if done { c.resume() }
            }
            race.settle(true)
        }
        let timer = Task {
            try? await Task.sleep(for: .seconds(2))
            race.settle(false)
        }
        _ = await race.value()
        timer.cancel()
        _ = waiter
    }

    var output: [UInt8] { state.withLock { $0.output } }
    var result: [UInt8]? { state.withLock { $0.result } }
}

@_silgen_name("posix_spawn_file_actions_addclosefrom_np")
private func jobq_addclosefrom(_ actions: UnsafeMutablePointer<posix_spawn_file_actions_t>, _ from: Int32) -> Int32

/// glibc declares `pipe2` only under _GNU_SOURCE; the symbol is always there.
@_silgen_name("pipe2")
private func jobq_pipe2(_ fds: UnsafeMutablePointer<Int32>, _ flags: Int32) -> Int32
