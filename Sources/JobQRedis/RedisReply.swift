internal import CHiredis

/// One Redis reply, decoded from hiredis at once: no C pointer outlives the call that read it.
///
/// Error replies (`-ERR …`, `-NOSCRIPT …`, `-WRONGTYPE …`) are values here, not thrown errors: the
/// connection that carried them is healthy. A dead connection is a thrown ``RedisError`` instead.
package enum RedisReply: Sendable, Hashable {
    /// A bulk string: binary-safe bytes.
    case bulk([UInt8])
    /// A simple status such as `OK` or `QUEUED`.
    case status(String)
    case integer(Int64)
    case array([RedisReply])
    /// The nil bulk string or nil array.
    case null
    /// An error reply; the text starts with its code (`NOSCRIPT No matching script…`).
    case error(String)
}

extension RedisReply {
    /// Converts a hiredis reply tree. The caller still owns (and frees) `pointer`.
    init(hiredis pointer: UnsafeMutablePointer<redisReply>) {
        let r = pointer.pointee
        switch r.type {
        case REDIS_REPLY_STRING:
            self = .bulk(Self.bytes(r.str, r.len))
        case REDIS_REPLY_STATUS:
            self = .status(String(decoding: Self.bytes(r.str, r.len), as: UTF8.self))
        case REDIS_REPLY_ERROR:
            self = .error(String(decoding: Self.bytes(r.str, r.len), as: UTF8.self))
        case REDIS_REPLY_INTEGER:
            self = .integer(Int64(r.integer))
        case REDIS_REPLY_ARRAY:
            var items: [RedisReply] = []
            items.reserveCapacity(Int(r.elements))
            if let element = r.element {
                for i in 0..<Int(r.elements) {
                    if let child = element[i] {
                        items.append(RedisReply(hiredis: child))
                    } else {
                        items.append(.null)
                    }
                }
            }
            self = .array(items)
        default:
            self = .null
        }
    }

    private static func bytes(_ str: UnsafeMutablePointer<CChar>?, _ len: Int) -> [UInt8] {
        guard let str, len > 0 else { return [] }
        return str.withMemoryRebound(to: UInt8.self, capacity: len) { Array(UnsafeBufferPointer(start: $0, count: len)) }
    }
}

// MARK: - Reading values

// Inlinable: the queue's script decoders read every reply through these, across the module
// boundary, and a call per field cost a measurable share of the drain rate.

extension RedisReply {
    /// The error text if this is an error reply.
    @inlinable
    package var errorMessage: String? {
        if case .error(let message) = self { return message }
        return nil
    }

    /// The error code of an error reply: its first word (`NOSCRIPT`, `BUSY`, `WRONGTYPE`, `ERR`…).
    @inlinable
    package var errorCode: Substring? {
        guard case .error(let message) = self else { return nil }
        return message.split(separator: " ", maxSplits: 1).first ?? Substring(message)
    }

    @inlinable
    package var isNull: Bool { self == .null }

    /// Bulk and status replies as UTF-8 text; integers in decimal.
    @inlinable
    package var string: String? {
        switch self {
        case .bulk(let b): return String(decoding: b, as: UTF8.self)
        case .status(let s): return s
        case .integer(let i): return String(i)
        default: return nil
        }
    }

    /// Bulk and status replies as bytes.
    @inlinable
    package var bytes: [UInt8]? {
        switch self {
        case .bulk(let b): return b
        case .status(let s): return Array(s.utf8)
        default: return nil
        }
    }

    /// Integers, and bulk strings holding a decimal integer.
    @inlinable
    package var int: Int? {
        switch self {
        case .integer(let i): return Int(i)
        case .bulk(let b): return Int(String(decoding: b, as: UTF8.self))
        case .status(let s): return Int(s)
        default: return nil
        }
    }

    @inlinable
    package var array: [RedisReply]? {
        if case .array(let items) = self { return items }
        return nil
    }
}

extension RedisReply: CustomStringConvertible {
    package var description: String {
        switch self {
        case .bulk(let b):
            if let s = String(validating: b, as: UTF8.self) { return "\"\(s)\"" }
            return "<\(b.count) bytes>"
        case .status(let s): return s
        case .integer(let i): return "(integer) \(i)"
        case .array(let items): return "[" + items.map(\.description).joined(separator: ", ") + "]"
        case .null: return "(nil)"
        case .error(let e): return "(error) \(e)"
        }
    }
}
