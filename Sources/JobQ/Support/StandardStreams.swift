import CHiredis

#if canImport(Glibc)
    import Glibc
#endif

/// Writing to stdout and stderr from jobq's executables without ever trapping.
///
/// `FileHandle.write` traps on any error, so `jobq-admin list | head -1` used to die with
/// SIGILL once `head` closed the pipe. Here a closed stdout (EPIPE) ends the process quietly with
/// status 0, as `git log | head` does; a closed stderr is ignored; another error on stdout
/// (a full disk) is reported on stderr and ends the process with status 1.
package enum StandardStreams {
    /// Call first thing in `main`: a write to a closed pipe then fails with EPIPE instead of
    /// killing the process (ArgumentParser's `--help` output included).
    package static func prepare() { ProcessSignals.ignoreBrokenPipes() }

    package static func out(_ text: String) { write(Array(text.utf8), to: 1) }
    package static func err(_ text: String) { write(Array(text.utf8), to: 2) }

    package static func write(_ bytes: [UInt8], to fd: Int32) {
        ProcessSignals.ignoreBrokenPipes()
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n >= 0 {
                    offset += n
                    continue
                }
                if errno == EINTR { continue }
                if errno == EAGAIN {
                    // A non-blocking stdout that is full: wait until it drains, never spin.
                    var ready = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                    _ = poll(&ready, 1, 1000)
                    continue
                }
                if fd != 1 { return }
                if errno == EPIPE { exit(0) }
                let reason = String(cString: strerror(errno))
                let message = Array("cannot write to standard output: \(reason)\n".utf8)
                _ = message.withUnsafeBytes { Glibc.write(2, $0.baseAddress, $0.count) }
                exit(1)
            }
        }
    }
}
