import CJobQSpawn
import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A pseudo-terminal for driving full-screen commands: the child gets the secondary side.
final class PseudoTerminal: Sendable {
    let primary: Int32
    let secondaryPath: String
    private let output = Mutex<[UInt8]>([])

    init(rows: UInt16 = 50, columns: UInt16 = 200) throws {
        var name = [CChar](repeating: 0, count: 128)
        primary = jobq_open_pty(&name, name.count)
        guard primary >= 0 else {
            throw TimedOut(what: "a pseudo-terminal (posix_openpt failed: \(String(cString: strerror(errno))))")
        }
        secondaryPath = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        _ = fcntl(primary, F_SETFL, fcntl(primary, F_GETFL) | O_NONBLOCK)
        var size = winsize(ws_row: rows, ws_col: columns, ws_xpixel: 0, ws_ypixel: 0)
        _ = ioctl(primary, UInt(TIOCSWINSZ), &size)
    }

    deinit { close(primary) }

    /// Everything the child wrote so far.
    func read() -> String {
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = Glibc.read(primary, &buffer, buffer.count)
            if n <= 0 { break }
            output.withLock { $0 += buffer[0..<n] }
        }
        return String(decoding: output.withLock { $0 }, as: UTF8.self)
    }

    func write(_ text: String) {
        _ = text.withCString { Glibc.write(primary, $0, strlen($0)) }
    }
}
