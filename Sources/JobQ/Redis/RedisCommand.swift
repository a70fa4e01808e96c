/// One Redis command, its arguments packed into a single buffer (binary-safe: NUL bytes survive).
///
/// Build it with ``init(_:_:)``: `RedisCommand("SET", key, bytes)`. Arguments are anything
/// ``RedisArgument``: `String`, `Substring`, `[UInt8]`, integers, `Double`.
public struct RedisCommand: Sendable, Hashable, CustomStringConvertible {
    var buffer: [UInt8]
    var lengths: [Int]

    public init(_ name: String, _ arguments: any RedisArgument...) {
        self.init(name, arguments: arguments)
    }

    public init(_ name: String, arguments: [any RedisArgument]) {
        buffer = []
        lengths = []
        lengths.reserveCapacity(arguments.count + 1)
        append(name)
        for argument in arguments { append(argument) }
    }

    /// An empty command, to be filled with ``append(_:)``.
    init() {
        buffer = []
        lengths = []
    }

    /// Appends one argument.
    public mutating func append(_ argument: some RedisArgument) {
        let before = buffer.count
        argument.appendRedisArgument(to: &buffer)
        lengths.append(buffer.count - before)
    }

    /// Appends every argument in order.
    public mutating func append(contentsOf arguments: [any RedisArgument]) {
        for argument in arguments { append(argument) }
    }

    /// Appends another command's arguments.
    mutating func append(arguments other: RedisCommand) {
        buffer.append(contentsOf: other.buffer)
        lengths.append(contentsOf: other.lengths)
    }

    public var argumentCount: Int { lengths.count }

    /// The command's name (first argument), upper-cased, for logs and errors.
    public var name: String {
        guard let first = lengths.first else { return "" }
        return String(decoding: buffer[0..<first], as: UTF8.self).uppercased()
    }

    /// Argument `i` as bytes.
    public func argument(_ i: Int) -> [UInt8] {
        var start = 0
        for j in 0..<i { start += lengths[j] }
        return Array(buffer[start..<start + lengths[i]])
    }

    /// The name and argument count only: arguments may hold secrets (AUTH) or large payloads.
    public var description: String { "\(name) (\(argumentCount - 1) arguments)" }
}

/// Something that can be a Redis command argument.
public protocol RedisArgument: Sendable {
    func appendRedisArgument(to buffer: inout [UInt8])
}

extension String: RedisArgument {
    public func appendRedisArgument(to buffer: inout [UInt8]) { buffer.append(contentsOf: utf8) }
}

extension Substring: RedisArgument {
    public func appendRedisArgument(to buffer: inout [UInt8]) { buffer.append(contentsOf: utf8) }
}

extension Array: RedisArgument where Element == UInt8 {
    public func appendRedisArgument(to buffer: inout [UInt8]) { buffer.append(contentsOf: self) }
}

extension ArraySlice: RedisArgument where Element == UInt8 {
    public func appendRedisArgument(to buffer: inout [UInt8]) { buffer.append(contentsOf: self) }
}

extension Int: RedisArgument {
    public func appendRedisArgument(to buffer: inout [UInt8]) { buffer.append(contentsOf: String(self).utf8) }
}

extension Int64: RedisArgument {
    public func appendRedisArgument(to buffer: inout [UInt8]) { buffer.append(contentsOf: String(self).utf8) }
}

extension UInt64: RedisArgument {
    public func appendRedisArgument(to buffer: inout [UInt8]) { buffer.append(contentsOf: String(self).utf8) }
}

extension Double: RedisArgument {
    public func appendRedisArgument(to buffer: inout [UInt8]) {
        if self == .infinity { buffer.append(contentsOf: "+inf".utf8) }
        else if self == -.infinity { buffer.append(contentsOf: "-inf".utf8) }
        else { buffer.append(contentsOf: String(self).utf8) }
    }
}
