/// A job's priority: −1000…1000, larger runs first; FIFO among equal priorities (`docs/job-lifecycle.md`).
public struct JobPriority: Sendable, Hashable, Comparable, ExpressibleByIntegerLiteral, CustomStringConvertible {
    public let value: Int

    public init(_ value: Int) { self.value = value }
    public init(integerLiteral value: Int) { self.value = value }

    public static let low = JobPriority(-10)
    public static let normal = JobPriority(0)
    public static let high = JobPriority(10)
    public static let range = -1000...1000

    public static func < (a: JobPriority, b: JobPriority) -> Bool { a.value < b.value }

    public var description: String {
        switch value {
        case -10: "low"
        case 0: "normal"
        case 10: "high"
        default: String(value)
        }
    }

    /// Parses `high`, `normal`, `low` or an integer in −1000…1000 (nil otherwise).
    public init?(parsing text: String) {
        switch text.lowercased() {
        case "high": self = .high
        case "normal": self = .normal
        case "low": self = .low
        default:
            guard let n = Int(text), Self.range.contains(n) else { return nil }
            self.init(n)
        }
    }
}
