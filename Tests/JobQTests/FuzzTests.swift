import Foundation
import LocalRedis
import Testing

@testable import JobQ
@testable import JobQRedis
@testable import JobQWorkerKit

/// The parsers we wrote, fed thousands of mutated and random inputs (seeded, bounded):
/// none may crash, and what each accepts must hold its invariants. A failure prints the seed and
/// the input. (A property-testing package was weighed: x-sheep/swift-property-based needs
/// swift-syntax for its macros, minutes of extra build on 2 cores; this needs a generator only.)
@Suite("Parser fuzzing")
struct FuzzTests {

    /// Characters that break naive parsers: separators, digits, signs, exponents, escapes,
    /// control characters, non-ASCII and very large numbers.
    static let alphabet: [String] = [
        ":", "/", "@", "?", "=", "&", "%", "%2", "%zz", "[", "]", ".", "..", "-", "+", "e", "E", "e308", "1e400", "inf", "nan",
        "0", "1", "9", "65535", "65536", "99999999999999999999", "-1", " ", "\t", "\n", "\r", "\u{0}", "\u{7f}", "é", "🎉", "\u{202e}",
        "{", "}", "ms", "s", "m", "h", "d", "redis://", "unix://", "db=", "*", "\\", "\"", "'", "==", "max=", "exponential", "fixed",
    ]

    /// `count` inputs: mutations of the seeds (insert, delete, replace, duplicate, truncate), and
    /// some wholly random strings.
    static func inputs(from seeds: [String], count: Int, seed: UInt64) -> [String] {
        var rng = SplitMix64(seed: seed)
        var out = seeds
        while out.count < count {
            if Int.random(in: 0..<10, using: &rng) == 0 {
                out.append((0..<Int.random(in: 0...12, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! }.joined())
                continue
            }
            var s = Array(seeds.randomElement(using: &rng)!.unicodeScalars).map { String($0) }
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                let at = s.isEmpty ? 0 : Int.random(in: 0...s.count, using: &rng)
                switch Int.random(in: 0..<5, using: &rng) {
                case 0: s.insert(alphabet.randomElement(using: &rng)!, at: at)
                case 1: if at < s.count { s.remove(at: at) }
                case 2: if at < s.count { s[at] = alphabet.randomElement(using: &rng)! }
                case 3: if at < s.count { s.insert(contentsOf: s[at...].prefix(5), at: at) }
                default: s = Array(s.prefix(at))
                }
            }
            out.append(s.joined())
        }
        return out
    }

    static let seed: UInt64 = 0x6A6F_6271  // "jobq"

    @Test(
        "Redis URLs: 5,000 inputs; nothing crashes; an accepted URL has a valid port and database, and its redacted form hides the password and parses back the same"
    )
    func redisURLs() throws {
        let seeds = [
            "redis://127.0.0.1:6379", "redis://user:secret-pw@127.0.0.1:6380/2", "unix:///tmp/redis.sock", "unix://user:secret-pw@/tmp/r.sock?db=3",
            "redis://[::1]:6379/0", "redis://localhost", "redis://:secret-pw@host:1/15",
        ]
        for input in Self.inputs(from: seeds, count: 5_000, seed: Self.seed) {
            guard let c = try? RedisConfiguration(url: input) else { continue }
            if case .tcp(let host, let port) = c.endpoint {
                #expect((1...65535).contains(port) && !host.isEmpty, "\(input)")
            }
            #expect(c.database >= 0, "\(input)")
            if let password = c.password, password.count >= 4 {
                #expect(!c.redactedURL.contains(password), "password shown for \(input)")
            }
            // The redacted URL (password replaced by ***) parses back to the same place.
            var withoutPassword = c
            withoutPassword.password = nil
            let again = try? RedisConfiguration(url: withoutPassword.redactedURL)
            #expect(
                again?.endpoint == c.endpoint && again?.database == c.database && again?.username == c.username, "\(input) → \(withoutPassword.redactedURL)")
        }
    }

    @Test("durations: 5,000 inputs; nothing crashes (1e400s, 1e300d included); accepted values are ≥ 0, and every canonical form parses back to itself")
    func durations() {
        let seeds = ["250ms", "5s", "2m", "1h", "1d", "1.5", "0", "10s", "100ms", "1e3ms", "3153600000s"]
        for input in Self.inputs(from: seeds, count: 5_000, seed: Self.seed &+ 1) {
            if let d = Duration(parsing: input) {
                #expect(d >= .zero, "\(input)")
                #expect(Duration(parsing: Backoff.text(d)) == d, "\(input) → \(Backoff.text(d))")
            }
        }
        #expect(Duration(parsing: "1e300d") == nil)
        #expect(Duration(parsing: "99999999999999999999s") == nil)
        #expect(Duration(parsing: "1.5s") == .milliseconds(1500))
    }

    @Test("backoff, priority and queue:weight: 3,000 inputs each; nothing crashes; accepted values are in range")
    func smallParsers() {
        for input in Self.inputs(from: ["exponential:1s", "linear:500ms:max=1h", "fixed:10s", "exponential:1s:max=2m"], count: 3_000, seed: Self.seed &+ 2) {
            if let b = Backoff(parsing: input) {
                #expect(b.cap >= b.base && b.base >= .zero, "\(input)")
                #expect(Backoff(parsing: String(b.description.prefix { $0 != " " })) == b, "\(input) → \(b.description)")
            }
        }
        for input in Self.inputs(from: ["high", "low", "normal", "5", "-1000", "1000"], count: 3_000, seed: Self.seed &+ 3) {
            if let p = JobPriority(parsing: input) { #expect(JobPriority.range.contains(p.value), "\(input)") }
        }
        for input in Self.inputs(from: ["emails:3", "reports", "a:b:2", "q:0"], count: 3_000, seed: Self.seed &+ 4) {
            if let share = WorkerConfiguration.QueueShare(parsing: input) {
                let valid = (try? QueueKeys.validate(queue: share.name)) != nil
                if valid { #expect(!share.name.contains("{") && !share.name.contains("}"), "\(input)") }
            }
        }
    }

    @Test("exec protocol lines: 5,000 inputs; nothing crashes; progress stays in 0–100; checkpoints round-trip through base64")
    func execProtocol() {
        let seeds = [
            "progress 50 halfway there", "progress 100", "checkpoint aGVsbG8=", "checkpoint ", "progress -5", "progress nan", "result e30=", "throttle 30s",
            "throttle 1500ms",
        ]
        for input in Self.inputs(from: seeds, count: 5_000, seed: Self.seed &+ 5) {
            switch ExecProtocolLine(parsing: input) {
            case .progress(let percent, _): #expect(percent.isFinite && (0...100).contains(percent), "\(input)")
            case .throttle(let wait, _): #expect(wait >= .milliseconds(1) && wait <= .seconds(86_400), "\(input)")
            case .checkpoint, nil: break
            }
        }
        var rng = SplitMix64(seed: Self.seed &+ 6)
        for _ in 0..<500 {
            let bytes = (0..<Int.random(in: 0...300, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            #expect(ExecProtocolLine(parsing: "checkpoint " + Data(bytes).base64EncodedString()) == .checkpoint(bytes) || bytes.isEmpty)
        }
    }

    @Test("queue and job names: 5,000 inputs; nothing crashes; an accepted name is within its byte limits and holds no brace or control character")
    func names() {
        let seeds = ["emails", "a:b", "with space", "🚀", String(repeating: "x", count: 100), String(repeating: "y", count: 200)]
        for input in Self.inputs(from: seeds, count: 5_000, seed: Self.seed &+ 7) {
            if (try? QueueKeys.validate(queue: input)) != nil {
                #expect((1...100).contains(input.utf8.count) && !input.contains("{") && !input.contains("}"), "\(input)")
                #expect(!input.unicodeScalars.contains { $0.properties.generalCategory == .control }, "\(input)")
            }
            if (try? JobQueue.validate(jobName: input, queue: "q")) != nil {
                #expect((1...200).contains(input.utf8.count), "\(input)")
            }
        }
    }
}

@Suite("exec protocol line splitting")
struct ProtocolLineSplitterTests {
    @Test("linear: a 4 MB line and 40 lines of 600 KB are each searched once and moved at most once")
    func linear() {
        var splitter = ProtocolLineSplitter(maxLine: 8 << 20)
        var lines: [Int] = []
        let chunk = [UInt8](repeating: 97, count: 64 << 10)
        var fed = 0
        // One 4 MB line in 64 KiB reads, then 40 lines of 600 KB.
        for _ in 0..<64 {
            splitter.feed(chunk[...]) { if case .line(let l) = $0 { lines.append(l.count) } }
            fed += chunk.count
        }
        splitter.feed([10][...]) { if case .line(let l) = $0 { lines.append(l.count) } }
        fed += 1
        let line = [UInt8](repeating: 98, count: 600_000) + [10]
        for _ in 0..<40 {
            var offset = 0
            while offset < line.count {
                let end = min(offset + (64 << 10), line.count)
                splitter.feed(line[offset..<end]) { if case .line(let l) = $0 { lines.append(l.count) } }
                offset = end
            }
            fed += line.count
        }
        #expect(lines.count == 41 && lines[0] == 64 << 16 && lines.dropFirst().allSatisfy { $0 == 600_000 })
        #expect(splitter.examined <= fed, "each byte searched once: \(splitter.examined) of \(fed)")
        #expect(splitter.moved <= fed, "compaction moves each byte at most once: \(splitter.moved) of \(fed)")
    }

    @Test("a line over the limit is reported with its length and skipped; the next line is whole; a last line without newline counts")
    func limit() {
        var splitter = ProtocolLineSplitter(maxLine: 1000)
        var pieces: [String] = []
        func take(_ p: ProtocolLineSplitter.Piece) {
            switch p {
            case .line(let l): pieces.append(String(decoding: l, as: UTF8.self))
            case .tooLong(let n): pieces.append("tooLong \(n)")
            }
        }
        splitter.feed(Array("ok\n".utf8)[...], take)
        for _ in 0..<5 { splitter.feed([UInt8](repeating: 120, count: 700)[...], take) }
        splitter.feed(Array("\nnext\ntail".utf8)[...], take)
        splitter.finish(take)
        #expect(pieces == ["ok", "tooLong 3500", "next", "tail"])
    }
}

@Suite("Strict duration and backoff syntax")
struct StrictSyntaxTests {
    @Test("durations are decimal with one unit: no hex, exponents, signs, inf or trailing junk")
    func durations() {
        for good in ["500ms", "5s", "2m", "1h", "1d", "1.5s", "30", "0s"] { #expect(Duration(parsing: good) != nil, "\(good)") }
        for bad in ["0x10s", "0x10", "1e3s", "1e3", "+5s", "-1s", "inf", "nan", "5 s", "5sec", ".5s", "5.s", "1.2.3s", "", "s", "5ss"] {
            #expect(Duration(parsing: bad) == nil, "\(bad)")
        }
    }

    @Test("a backoff has one base and one max at most, and no empty part")
    func backoffs() {
        for good in ["fixed:10s", "exponential", "linear:500ms:max=1h", "exponential:max=5m"] { #expect(Backoff(parsing: good) != nil, "\(good)") }
        for bad in ["fixed:", "fixed:1s:1s", "fixed:1s:1s:1s", "fixed::1s", "exponential:max=1h:2s", "fixed:1s:max=1h:max=2h", ":1s"] {
            #expect(Backoff(parsing: bad) == nil, "\(bad)")
        }
    }
}
