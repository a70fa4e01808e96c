/// Where a job is in its life. A removed job has no state: its record is gone and only its
/// `removed` event remains.
public enum JobState: String, Sendable, Hashable, CaseIterable, Codable, CustomStringConvertible {
    case waiting, delayed, active, completed, failed, cancelled

    /// Completed, failed and cancelled are final: the job runs no more (unless retried by hand).
    public var isFinished: Bool { self == .completed || self == .failed || self == .cancelled }

    public var description: String { rawValue }
}
