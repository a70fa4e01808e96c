public import Foundation

/// One entry of a queue's event stream (`jobq:{<q>}:events`).
public struct QueueEvent: Sendable, Hashable {
    /// What happened. Exactly one event per state move (DESIGN §6), plus progress and operator
    /// actions.
    public enum Kind: Sendable, Hashable, CustomStringConvertible {
        case added, delayed, waiting, active, progress, completed, failed, retrying, stalled
        case cancelled, cancelRequested, removed, paused, resumed, cleaned
        case other(String)

        init(_ text: String) {
            switch text {
            case "added": self = .added
            case "delayed": self = .delayed
            case "waiting": self = .waiting
            case "active": self = .active
            case "progress": self = .progress
            case "completed": self = .completed
            case "failed": self = .failed
            case "retrying": self = .retrying
            case "stalled": self = .stalled
            case "cancelled": self = .cancelled
            case "cancel-requested": self = .cancelRequested
            case "removed": self = .removed
            case "paused": self = .paused
            case "resumed": self = .resumed
            case "cleaned": self = .cleaned
            default: self = .other(text)
            }
        }

        public var description: String {
            switch self {
            case .added: "added"
            case .delayed: "delayed"
            case .waiting: "waiting"
            case .active: "active"
            case .progress: "progress"
            case .completed: "completed"
            case .failed: "failed"
            case .retrying: "retrying"
            case .stalled: "stalled"
            case .cancelled: "cancelled"
            case .cancelRequested: "cancel-requested"
            case .removed: "removed"
            case .paused: "paused"
            case .resumed: "resumed"
            case .cleaned: "cleaned"
            case .other(let s): s
            }
        }
    }

    /// The stream entry id (`<ms>-<n>`).
    public let streamID: String
    public let kind: Kind
    /// The job it is about ("" for queue-wide events: paused, resumed, cleaned).
    public let jobID: String
    /// Every field as stored: `at` attempt, `w` worker, `er` reason, `ed` details, `r` result
    /// excerpt, `pp`/`pm` progress, `dl` retry delay ms, `by` who cancelled, `from` previous state.
    public let fields: [String: [UInt8]]

    /// When it happened (Redis clock, from the stream id).
    public var time: Date {
        let ms = Double(streamID.prefix(while: { $0 != "-" })) ?? 0
        return Date(timeIntervalSince1970: ms / 1000)
    }

    /// A field as text.
    public subscript(field: String) -> String? {
        fields[field].map { String(decoding: $0, as: UTF8.self) }
    }

    init?(streamID: String, flat: [RedisReply]) {
        var fields: [String: [UInt8]] = [:]
        var i = 0
        while i + 1 < flat.count {
            if let name = flat[i].string, let value = flat[i + 1].bytes { fields[name] = value }
            i += 2
        }
        guard let kind = fields.removeValue(forKey: "ev").map({ String(decoding: $0, as: UTF8.self) }) else { return nil }
        self.streamID = streamID
        self.kind = Kind(kind)
        self.jobID = fields.removeValue(forKey: "id").map { String(decoding: $0, as: UTF8.self) } ?? ""
        self.fields = fields
    }
}
