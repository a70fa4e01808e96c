import Foundation

/// How long to wait before retrying a failed run (`docs/job-lifecycle.md`):
/// `min(cap, base · f(n)) · (1 + U[0, jitter])` for the run `n` that failed, with f = 1 (fixed),
/// n (linear) or 2^(n−1) (exponential). Default: exponential, base 1 s, cap 1 h, jitter 0.2.
public struct Backoff: Sendable, Hashable, CustomStringConvertible {
    public enum Kind: String, Sendable, Hashable {
        case fixed, linear, exponential
    }

    public var kind: Kind
    public var base: Duration
    public var cap: Duration
    /// Extra random fraction, 0…1: spreads retries of jobs that failed together.
    public var jitter: Double

    public init(kind: Kind, base: Duration, cap: Duration = .seconds(3600), jitter: Double = 0.2) {
        self.kind = kind
        self.base = base
        self.cap = cap
        self.jitter = jitter
    }

    public static func fixed(_ delay: Duration, jitter: Double = 0) -> Backoff {
        Backoff(kind: .fixed, base: delay, cap: max(delay, .seconds(3600)), jitter: jitter)
    }

    public static func linear(base: Duration = .seconds(1), max cap: Duration = .seconds(3600), jitter: Double = 0.2) -> Backoff {
        Backoff(kind: .linear, base: base, cap: cap, jitter: jitter)
    }

    public static func exponential(base: Duration = .seconds(1), max cap: Duration = .seconds(3600), jitter: Double = 0.2) -> Backoff {
        Backoff(kind: .exponential, base: base, cap: cap, jitter: jitter)
    }

    public static let `default` = Backoff.exponential()

    /// The delay in ms after run `attempt` (1-based) failed, with a given random draw in 0…1.
    public func delayMs(afterAttempt attempt: Int, random: Double = Double.random(in: 0...1)) -> Int64 {
        let baseMs = Double(base.milliseconds)
        let factor: Double
        switch kind {
        case .fixed: factor = 1
        case .linear: factor = Double(max(1, attempt))
        case .exponential: factor = pow2(max(0, min(attempt - 1, 62)))
        }
        let raw = min(Double(cap.milliseconds), baseMs * factor)
        return Int64((raw * (1 + jitter * min(1, max(0, random)))).rounded())
    }

    private func pow2(_ n: Int) -> Double {
        var v = 1.0
        for _ in 0..<n { v *= 2 }
        return v
    }

    /// Stored form: `e:1000:3600000:0.2` (kind, base ms, cap ms, jitter).
    var encoded: String { "\(kind.rawValue.prefix(1)):\(base.milliseconds):\(cap.milliseconds):\(jitter)" }

    init?(encoded: String) {
        let parts = encoded.split(separator: ":")
        guard parts.count == 4, let b = Int(parts[1]), let c = Int(parts[2]), let j = Double(parts[3]) else { return nil }
        switch parts[0] {
        case "f": kind = .fixed
        case "l": kind = .linear
        case "e": kind = .exponential
        default: return nil
        }
        base = .milliseconds(b)
        cap = .milliseconds(c)
        jitter = j
    }

    /// Parses `exponential:1s`, `linear:500ms`, `fixed:10s`, optionally `:max=1h` (CLI form).
    public init?(parsing text: String) {
        // At most one base and one max, no empty part (`fixed:` and `fixed:1s:1s` are refused).
        let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard let first = parts.first, let kind = Kind(rawValue: first), parts.count <= 3, !parts.contains(where: \.isEmpty) else { return nil }
        var base = Duration.seconds(1)
        var cap = Duration.seconds(3600)
        var sawBase = false
        var sawCap = false
        for part in parts.dropFirst() {
            if part.hasPrefix("max=") {
                guard !sawCap, let d = Duration(parsing: String(part.dropFirst(4))) else { return nil }
                cap = d
                sawCap = true
            } else {
                guard !sawBase, !sawCap, let d = Duration(parsing: part) else { return nil }
                base = d
                sawBase = true
            }
        }
        self.init(kind: kind, base: base, cap: max(cap, base), jitter: kind == .fixed ? 0 : 0.2)
    }

    /// The command-line form (`exponential:1s:max=1h`), with the jitter when it has one.
    public var description: String {
        "\(kind.rawValue):\(Self.text(base)):max=\(Self.text(cap))" + (jitter > 0 ? " (jitter \(Int((jitter * 100).rounded()))%)" : "")
    }

    /// `250ms`, `5s`, `2m`, `1h`: the largest unit that divides the duration.
    static func text(_ d: Duration) -> String {
        let ms = d.milliseconds
        for (unit, size) in [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)] where ms >= size && ms % size == 0 {
            return "\(ms / size)\(unit)"
        }
        return "\(ms)ms"
    }
}

extension Duration {
    /// Whole milliseconds of `seconds`, or nil past 100 years (no duration we take is longer,
    /// and larger values would overflow).
    private static func milliseconds(_ seconds: Double) -> Int64? {
        let ms = (seconds * 1000).rounded()
        return ms.isFinite && ms >= 0 && ms <= 3_153_600_000_000 ? Int64(ms) : nil
    }

    /// Parses `250ms`, `5s`, `2m`, `1h`, `1d`, or a plain number of seconds (up to 100 years).
    /// Numbers are decimal (`1.5s`): no hex, exponents, signs or `inf`.
    public init?(parsing text: String) {
        let t = text.trimmingCharacters(in: .whitespaces)
        let digits = t.prefix { $0.isASCII && ($0.isNumber || $0 == ".") }
        guard !digits.isEmpty, digits.first != ".", digits.filter({ $0 == "." }).count <= 1, digits.last != "." else { return nil }
        guard ["", "ms", "s", "m", "h", "d"].contains(String(t.dropFirst(digits.count))) else { return nil }
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400)]
        for (suffix, scale) in units where t.hasSuffix(suffix) {
            let number = t.dropLast(suffix.count)
            // "ms" before "s"/"m": the table order makes "5ms" match "ms" first.
            guard let v = Double(number), v >= 0, v.isFinite else { continue }
            guard let ms = Self.milliseconds(v * scale) else { return nil }
            self = .milliseconds(ms)
            return
        }
        guard let v = Double(t), v >= 0, v.isFinite, let ms = Self.milliseconds(v) else { return nil }
        self = .milliseconds(ms)
    }
}
