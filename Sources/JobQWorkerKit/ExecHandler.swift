import CJobQSpawn
import Foundation
public import JobQ
import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A handler that runs a program for each job (`docs/handlers.md`), for jobs written in any language.
///
/// - The payload arrives on **stdin**; stdout and stderr are captured (the last 64 KiB become the
///   failure details).
/// - **fd 3** carries protocol lines from the program: `progress <percent> [message]`,
///   `checkpoint <base64>`, `result <base64>`, `throttle <duration> [group]` (with a non-zero
///   exit: the run ends as ``JobQ/RateLimited`` — back first in line, no attempt used, the whole
///   queue, or with `group` only the job's group, waits that long).
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

    /// The handler, for wrapping in a handler of your own; then also call
    /// ``JobQ/JobHandlers/stopsExecPrograms()`` so the worker waits for the programs at stop.
    /// ``JobQ/JobHandlers/register(name:_:)-exec`` does both.
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

        // Protocol lines are applied in order, one at a time, each awaited (a checkpoint is in
        // Redis before the next line is looked at); at most 64 wait, then the program's writes
        // to fd 3 block (backpressure through the pipe).
        let (lines, feed) = AsyncStream.makeStream(of: SpawnedProgram.ProtocolInput.self)
        let credit = DispatchSemaphore(value: 64)
        let closed = Atomic<Bool>(false)
        let process = try SpawnedProgram(
            executable: executable, arguments: arguments, environment: environment,
            stdin: job.payload.bytes, outputLimit: outputLimit, owner: context.workerID
        ) { input in
            // On the reader's own thread: waiting here is waiting on the program.
            while credit.wait(timeout: .now() + .milliseconds(200)) == .timedOut {
                if closed.load(ordering: .acquiring) { return }
            }
            feed.yield(input)
        }
        let throttle = Mutex<RateLimited?>(nil)
        let applier = Task {
            for await input in lines {
                if case .line(let text) = input, case .throttle(let wait, let group)? = ExecProtocolLine(parsing: text) {
                    throttle.withLock { $0 = RateLimited(retryAfter: wait, scope: group ? .group : .queue) }
                }
                await Self.apply(input, context: context, process: process)
                credit.signal()
            }
        }
        context.onCancel { [killAfter] _ in process.terminate(killAfter: killAfter) }
        let status = await process.wait()
        await process.protocolDone()
        closed.store(true, ordering: .releasing)
        feed.finish()
        await applier.value
        let output = process.output
        if status.exited && status.code == 0 {
            return process.result ?? []
        }
        if let reason = context.cancellationReason {
            throw JobCancelledError(reason: reason)
        }
        if let limited = throttle.withLock({ $0 }) { throw limited }
        let tail = String(decoding: output.suffix(2048), as: UTF8.self)
        if status.exited && status.code == Self.noRetryExitCode {
            throw UnrecoverableError("\(executable) exited with \(Self.noRetryExitCode) (no retry); output: \(tail)", reason: "exitCode\(Self.noRetryExitCode)")
        }
        let how = status.exited ? "exited with \(status.code)" : "was killed by signal \(status.signal)"
        throw ExitFailure(description: "\(executable) \(how); output: \(tail)")
    }

    /// Applies one protocol line from fd 3. A checkpoint that cannot be stored (over the limit,
    /// malformed, lease lost, Redis refusing it) is logged as a warning and noted in the job's
    /// captured output, so a program that later resumes from an older checkpoint leaves a trace.
    static func apply(_ input: SpawnedProgram.ProtocolInput, context: JobContext, process: SpawnedProgram) async {
        switch input {
        case .tooLong(let bytes):
            context.logger.warning("the program wrote a protocol line over the limit on fd 3; it was dropped", metadata: ["bytes": "\(bytes)"])
            process.note("[jobq] a protocol line of more than \(bytes) bytes on fd 3 was dropped (limit \(SpawnedProgram.maxProtocolLine) bytes)")
        case .line(let line):
            switch ExecProtocolLine(parsing: line) {
            case .progress(let percent, let message):
                context.progress(percent: percent, message: message)
            case .throttle:
                break  // applied when the program exits
            case .checkpoint(let bytes):
                do {
                    try await context.checkpoint(bytes)
                } catch {
                    context.logger.warning("checkpoint from the program not saved", metadata: ["bytes": "\(bytes.count)", "error": "\(error)"])
                    process.note("[jobq] checkpoint of \(bytes.count) bytes not saved: \(error)")
                }
            case nil:
                if line.hasPrefix("checkpoint") {
                    context.logger.warning("malformed checkpoint line from the program (expected `checkpoint <base64>`); not saved")
                    process.note("[jobq] malformed checkpoint line not saved (expected `checkpoint <base64>`)")
                } else {
                    context.logger.debug("unknown or malformed protocol line from the program: \(line.prefix(200))")
                }
            }
        }
    }
}

/// A line of the exec protocol (fd 3): `progress <percent 0–100> [message]`,
/// `checkpoint <base64>` or `throttle <duration> [group]` (`30s`, `1500ms`, or seconds; 1 ms…1
/// day; `group`: only the job's group waits).
/// Anything else is nil (ignored, logged at debug).
public enum ExecProtocolLine: Sendable, Hashable {
    case progress(percent: Double, message: String)
    case checkpoint([UInt8])
    case throttle(Duration, group: Bool = false)

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
        case "throttle":
            guard parts.count == 2 || (parts.count == 3 && parts[2] == "group"), let wait = Duration(parsing: parts[1]),
                wait >= .milliseconds(1), wait <= .seconds(86_400)
            else { return nil }
            self = .throttle(wait, group: parts.count == 3)
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

    /// What the fd-3 reader hands on: a line (without its newline, trimmed), or the size of a
    /// line that passed ``maxProtocolLine`` and was dropped.
    enum ProtocolInput: Sendable {
        case line(String)
        case tooLong(Int)
    }

    /// The longest protocol line kept: a 1 MiB checkpoint or result in base64 with room to spare.
    static let maxProtocolLine = 4 << 20

    let pid: pid_t
    /// The worker that started it: a worker does not exit while a program it started lives.
    let owner: String
    private let state = Mutex<
        (
            status: Int32?, output: [UInt8], result: [UInt8]?, waiters: [CheckedContinuation<Void, Never>], readersLeft: Int,
            readerWaiters: [CheckedContinuation<Void, Never>]
        )
    >((nil, [], nil, [], 2, []))
    /// When SIGKILL is due (set by the first ``terminate(killAfter:)``).
    private let killAt = Mutex<ContinuousClock.Instant?>(nil)

    /// Programs not yet reaped, by owner (worker id) and pid.
    private static let live = Mutex<[String: [pid_t: SpawnedProgram]]>([:])

    init(
        executable: String, arguments: [String], environment: [String: String], stdin input: [UInt8], outputLimit: Int,
        owner: String = "", onProtocolLine: @escaping @Sendable (ProtocolInput) -> Void
    ) throws {
        self.owner = owner
        func makePipe() throws -> (read: Int32, write: Int32) {
            var fds: [Int32] = [0, 0]
            guard jobq_pipe_cloexec(&fds) == 0 else { throw ExecHandler.ExitFailure(description: "pipe: \(String(cString: strerror(errno)))") }
            return (fds[0], fds[1])
        }
        let stdinPipe = try makePipe()
        let outputPipe = try makePipe()
        let protocolPipe = try makePipe()

        // stdin, stdout + stderr, the protocol pipe on fd 3; nothing else crosses.
        let descriptors = [(stdinPipe.read, 0), (outputPipe.write, 1), (outputPipe.write, 2), (protocolPipe.write, 3)].map {
            jobq_spawn_fd(child_fd: $0.1, parent_fd: $0.0, path: nil, flags: 0, mode: 0)
        }
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        let env = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for p in env { free(p) } }
        var pid: pid_t = 0
        let rc = jobq_spawn(&pid, executable, argv, env, descriptors, Int32(descriptors.count), 4, JOBQ_SPAWN_NEW_PROCESS_GROUP)
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
                    if n < 0 {
                        if errno == EINTR { continue }
                        break
                    }
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
            var splitter = ProtocolLineSplitter(maxLine: Self.maxProtocolLine)
            var buffer = [UInt8](repeating: 0, count: 64 << 10)
            func deliver(_ piece: ProtocolLineSplitter.Piece) {
                switch piece {
                case .line(let bytes):
                    let text = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                    if text.hasPrefix("result ") {
                        if let data = Data(base64Encoded: String(text.dropFirst(7))) {
                            state.withLock { $0.result = Array(data) }
                        }
                    } else if !text.isEmpty {
                        onProtocolLine(.line(text))
                    }
                case .tooLong(let count):
                    onProtocolLine(.tooLong(count))
                }
            }
            while true {
                let n = read(protocolPipe.read, &buffer, buffer.count)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                splitter.feed(buffer[0..<n], deliver)
            }
            splitter.finish(deliver)
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

    /// Adds a line of jobq's own to the captured output (it shows in the failure details).
    func note(_ text: String) {
        state.withLock { s in
            if let last = s.output.last, last != 10 { s.output.append(10) }
            s.output.append(contentsOf: Array((text + "\n").utf8))
        }
    }
    var result: [UInt8]? { state.withLock { $0.result } }
}

/// Splits the bytes of fd 3 into lines, in time linear in what the program writes: each byte is
/// searched for a newline once, consumed lines are compacted away in amortized O(1) per byte, and
/// a line longer than `maxLine` is skipped to its newline (reported with its length) instead of
/// being kept.
struct ProtocolLineSplitter {
    enum Piece {
        case line(ArraySlice<UInt8>)
        case tooLong(Int)
    }

    let maxLine: Int
    private var pending: [UInt8] = []
    private var start = 0  // first byte of the current line
    private var scanned = 0  // bytes before this have been searched for a newline
    private var dropping = false  // inside a line past the limit
    private var dropped = 0  // bytes of that line seen so far
    /// Bytes looked at by the newline search, for tests (at most each byte once).
    private(set) var examined = 0
    /// Bytes moved by compaction, for tests (at most the bytes fed).
    private(set) var moved = 0

    init(maxLine: Int) { self.maxLine = maxLine }

    mutating func feed(_ bytes: ArraySlice<UInt8>, _ deliver: (Piece) -> Void) {
        pending.append(contentsOf: bytes)
        while let newline = pending[scanned...].firstIndex(of: 10) {
            examined += newline + 1 - scanned
            if dropping {
                dropping = false
                deliver(.tooLong(dropped + (newline - start)))
            } else {
                deliver(.line(pending[start..<newline]))
            }
            start = newline + 1
            scanned = start
        }
        examined += pending.count - scanned
        scanned = pending.count
        if !dropping && pending.count - start > maxLine {
            dropping = true
            dropped = 0
        }
        if dropping {
            dropped += pending.count - start
            start = pending.count
            scanned = start
        }
        if start > 0 && start * 2 >= pending.count {
            moved += pending.count - start
            pending.removeSubrange(0..<start)
            scanned -= start
            start = 0
        }
    }

    /// The last line, when the program closed fd 3 without a final newline.
    mutating func finish(_ deliver: (Piece) -> Void) {
        if dropping {
            deliver(.tooLong(dropped))
        } else if start < pending.count {
            deliver(.line(pending[start...]))
        }
        pending = []
        start = 0
        scanned = 0
        dropping = false
    }
}

extension JobHandlers {
    /// Runs jobs named `name` with `exec`, and makes the worker wait, as it stops, for every
    /// program an exec handler started.
    public mutating func register(name: String, _ exec: ExecHandler) {
        register(name: name, exec.handler)
        stopsExecPrograms()
    }

    /// At stop, the worker waits for every program its exec handlers started: programs told to
    /// stop keep their SIGKILL delay, the others get SIGTERM and then SIGKILL after 10 s. No
    /// program outlives the worker — its job is back in waiting and may already run elsewhere.
    public mutating func stopsExecPrograms() {
        onStop(id: "jobq.exec") { workerID, logger in
            let children = SpawnedProgram.liveCount(owner: workerID)
            if children > 0 {
                logger.info("waiting for exec programs to exit (SIGKILL after their kill delay)", metadata: ["programs": "\(children)"])
                _ = await SpawnedProgram.endAll(owner: workerID, killAfter: .seconds(10))
            }
            ExecScratch.removeIfEmpty()
        }
    }
}
