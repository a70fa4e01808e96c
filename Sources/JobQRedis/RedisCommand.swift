/// One Redis command, encoded as RESP when it is built (on the caller's thread, not the
/// connection's): every argument is length-prefixed, so any bytes, NUL included, go through.
///
/// Build it with ``init(_:_:)``: `RedisCommand("SET", key, bytes)`. Arguments are anything
/// ``RedisArgument``: `String`, `Substring`, `[UInt8]`, integers, `Double`.
package struct RedisCommand: Sendable, Hashable, CustomStringConvertible {
    /// `$<len>\r\n<bytes>\r\n` for each argument, in order (the `*<count>` header is added
    /// when the command is sent, so arguments can still be appended).
    private(set) var body: [UInt8]
    package private(set) var argumentCount: Int

    package init(_ name: String, _ arguments: any RedisArgument...) {
        self.init(name, arguments: arguments)
    }

    package init(_ name: String, arguments: [any RedisArgument]) {
        body = []
        body.reserveCapacity(16 + name.utf8.count + arguments.count * 16)
        argumentCount = 0
        append(name)
        for argument in arguments { append(argument) }
    }

    /// An empty command, to be filled with ``append(_:)``.
    init() {
        body = []
        argumentCount = 0
    }

    /// Appends one argument.
    package mutating func append(_ argument: some RedisArgument) {
        appendLengthLine(argument.redisByteCount)
        let before = body.count
        argument.appendRedisArgument(to: &body)
        assert(body.count - before == argument.redisByteCount, "redisByteCount disagrees with the encoding")
        body.append(13)
        body.append(10)
        argumentCount += 1
    }

    private mutating func appendLengthLine(_ length: Int) {
        body.append(UInt8(ascii: "$"))
        body.append(contentsOf: String(length).utf8)
        body.append(13)
        body.append(10)
    }

    /// Appends every argument in order.
    package mutating func append(contentsOf arguments: [any RedisArgument]) {
        for argument in arguments { append(argument) }
    }

    /// Calls `body` with the `*<count>\r\n` header for this command with `extra` more arguments
    /// in front (from a table for the usual counts: no allocation per command).
    func withHeader<R>(extra: Int = 0, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
        let n = argumentCount + extra
        if n < Self.headers.count { return Self.headers[n].withUnsafeBufferPointer(body) }
        return Array("*\(n)\r\n".utf8).withUnsafeBufferPointer(body)
    }

    private static let headers: [[UInt8]] = (0..<64).map { Array("*\($0)\r\n".utf8) }

    /// The command's name (first argument), upper-cased, for logs and errors.
    package var name: String {
        guard argumentCount > 0 else { return "" }
        return String(decoding: argument(0), as: UTF8.self).uppercased()
    }

    /// Argument `i` as bytes.
    package func argument(_ i: Int) -> [UInt8] {
        var position = 0
        for j in 0...i {
            // "$<digits>\r\n"
            var length = 0
            position += 1
            while body[position] != 13 {
                length = length * 10 + Int(body[position] - UInt8(ascii: "0"))
                position += 1
            }
            position += 2
            if j == i { return Array(body[position..<position + length]) }
            position += length + 2
        }
        return []
    }

    /// The name and argument count only: arguments may hold secrets (AUTH) or large payloads.
    package var description: String { "\(name) (\(argumentCount - 1) arguments)" }
}

/// Something that can be a Redis command argument.
package protocol RedisArgument: Sendable {
    /// Appends the argument's bytes.
    func appendRedisArgument(to buffer: inout [UInt8])
    /// How many bytes ``appendRedisArgument(to:)`` appends.
    var redisByteCount: Int { get }
}

extension String: RedisArgument {
    package func appendRedisArgument(to buffer: inout [UInt8]) { buffer.append(contentsOf: utf8) }
    package var redisByteCount: Int { utf8.count }
}

extension Substring: RedisArgument {
    package func appendRedisArgument(to buffer: inout [UInt8]) { buffer.append(contentsOf: utf8) }
    package var redisByteCount: Int { utf8.count }
}

extension Array: RedisArgument where Element == UInt8 {
    package func appendRedisArgument(to buffer: inout [UInt8]) { buffer.append(contentsOf: self) }
    package var redisByteCount: Int { count }
}

extension ArraySlice: RedisArgument where Element == UInt8 {
    package func appendRedisArgument(to buffer: inout [UInt8]) { buffer.append(contentsOf: self) }
    package var redisByteCount: Int { count }
}

extension Int: RedisArgument {
    package func appendRedisArgument(to buffer: inout [UInt8]) { buffer.append(contentsOf: String(self).utf8) }
    package var redisByteCount: Int { String(self).utf8.count }
}

extension Int64: RedisArgument {
    package func appendRedisArgument(to buffer: inout [UInt8]) { buffer.append(contentsOf: String(self).utf8) }
    package var redisByteCount: Int { String(self).utf8.count }
}

extension UInt64: RedisArgument {
    package func appendRedisArgument(to buffer: inout [UInt8]) { buffer.append(contentsOf: String(self).utf8) }
    package var redisByteCount: Int { String(self).utf8.count }
}

extension Double: RedisArgument {
    private var redisText: String {
        if self == .infinity { return "+inf" }
        if self == -.infinity { return "-inf" }
        return String(self)
    }
    package func appendRedisArgument(to buffer: inout [UInt8]) { buffer.append(contentsOf: redisText.utf8) }
    package var redisByteCount: Int { redisText.utf8.count }
}
