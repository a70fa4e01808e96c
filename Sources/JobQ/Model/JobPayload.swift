import Foundation

/// A job's input: bytes plus how they are encoded.
public struct JobPayload: Sendable, Hashable {
    public enum Encoding: String, Sendable, Hashable, Codable {
        /// UTF-8 JSON (the default; typed handlers decode it).
        case json
        /// Opaque bytes.
        case bytes
    }

    public var bytes: [UInt8]
    public var encoding: Encoding

    public init(bytes: [UInt8], encoding: Encoding = .bytes) {
        self.bytes = bytes
        self.encoding = encoding
    }

    /// JSON text, stored as is (not validated here; typed handlers fail the job if it does not decode).
    public static func json(_ text: String) -> JobPayload { JobPayload(bytes: Array(text.utf8), encoding: .json) }

    /// Opaque bytes.
    public static func bytes(_ bytes: [UInt8]) -> JobPayload { JobPayload(bytes: bytes, encoding: .bytes) }

    /// `value` encoded as JSON.
    public static func encoding<T: Encodable>(_ value: T) throws(JobQError) -> JobPayload {
        do {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            encoder.dateEncodingStrategy = .iso8601
            return JobPayload(bytes: Array(try encoder.encode(value)), encoding: .json)
        } catch {
            throw JobQError(.invalidOptions, detail: "the payload does not encode as JSON: \(error)")
        }
    }

    /// Decodes a JSON payload into `type`.
    public func decode<T: Decodable>(_ type: T.Type) throws -> T {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try decoder.decode(type, from: Data(bytes))
    }

    /// The payload as UTF-8 text (lossy for binary payloads).
    public var text: String { String(decoding: bytes, as: UTF8.self) }
}

/// A typed job: its parameters are its JSON payload, its type names the job.
///
/// ```swift
/// struct SendEmail: JobParameters {
///     static let jobName = "send-email"
///     var to: String
/// }
/// try await queue.add(SendEmail(to: "a@example.com"))
/// ```
public protocol JobParameters: Codable, Sendable {
    /// The job name handlers are registered under.
    static var jobName: String { get }
}
