public import Foundation

/// A cron expression: 5 fields (minute hour day-of-month month day-of-week), or 6 with a leading
/// seconds field; lists (`1,15`), ranges (`1-5`), steps (`*/7`, `10-40/10`, `5/15`), month names
/// (`JAN`…`DEC`) and day names (`SUN`…`SAT`, case-insensitive; day 7 is Sunday too), `?` as `*`,
/// and `@yearly` (`@annually`), `@monthly`, `@weekly`, `@daily` (`@midnight`), `@hourly`.
///
/// Day of month and day of week follow the classic cron rule: when both are restricted (neither
/// starts with `*`), a day matches if either matches (`0 0 13 * FRI` fires on every 13th and on
/// every Friday); when one is `*`, only the other counts.
///
/// Times are computed on the wall clock of a time zone (``next(after:in:)``): a local time that a
/// spring-forward skips fires once, at the first valid instant after the gap; a local time that a
/// fall-back repeats fires once, at its first occurrence (`docs/schedules.md`).
public struct CronExpression: Sendable, Hashable, CustomStringConvertible {
    /// The expression as given.
    public let text: String
    let seconds: UInt64
    let minutes: UInt64
    let hours: UInt64
    let daysOfMonth: UInt64
    let months: UInt64
    let daysOfWeek: UInt64
    let dayOfMonthRestricted: Bool
    let dayOfWeekRestricted: Bool

    public var description: String { text }

    private struct Field {
        let name: String
        let range: ClosedRange<Int>
        let names: [String]
    }

    private static let secondField = Field(name: "second", range: 0...59, names: [])
    private static let minuteField = Field(name: "minute", range: 0...59, names: [])
    private static let hourField = Field(name: "hour", range: 0...23, names: [])
    private static let dayOfMonthField = Field(name: "day of month", range: 1...31, names: [])
    private static let monthField = Field(
        name: "month", range: 1...12, names: ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"])
    private static let dayOfWeekField = Field(name: "day of week", range: 0...7, names: ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])

    private static let macros: [String: String] = [
        "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
        "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
    ]

    /// Parses an expression.
    /// - Throws: ``JobQError/Code-swift.struct/invalidSchedule``, naming the field and what is
    ///   wrong with it.
    public init(_ text: String) throws(JobQError) {
        func bad(_ detail: String) -> JobQError { JobQError(.invalidSchedule, detail: "cron \"\(Self.shown(text))\": \(detail)") }
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard trimmed.utf8.count <= 256 else { throw bad("an expression is at most 256 bytes long") }
        var expanded = trimmed
        if trimmed.hasPrefix("@") {
            guard let macro = Self.macros[trimmed.lowercased()] else {
                throw bad("unknown macro; use @yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly")
            }
            expanded = macro
        }
        let parts = expanded.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard parts.count == 5 || parts.count == 6 else {
            throw bad(
                "\(parts.count) fields; a cron expression has 5 (minute hour day-of-month month day-of-week) or 6 (a leading second)")
        }
        let fields = parts.count == 6 ? parts : ["0"] + parts
        let number = parts.count == 6 ? 0 : -1
        func parse(_ index: Int, _ field: Field) throws(JobQError) -> UInt64 {
            do {
                return try Self.parse(fields[index], field)
            } catch {
                throw bad("field \(index + 1 + number) (\(field.name)): \(error.detail)")
            }
        }
        self.text = trimmed
        seconds = try parse(0, Self.secondField)
        minutes = try parse(1, Self.minuteField)
        hours = try parse(2, Self.hourField)
        daysOfMonth = try parse(3, Self.dayOfMonthField)
        months = try parse(4, Self.monthField)
        var weekdays = try parse(5, Self.dayOfWeekField)
        if weekdays & (1 << 7) != 0 { weekdays = (weekdays | 1) & ~(1 << 7) }
        daysOfWeek = weekdays
        dayOfMonthRestricted = !(fields[3].hasPrefix("*") || fields[3].hasPrefix("?"))
        dayOfWeekRestricted = !(fields[5].hasPrefix("*") || fields[5].hasPrefix("?"))
        // A day that no month has (`30 2`, `31 4,6`): refused here rather than never firing.
        if dayOfMonthRestricted && !dayOfWeekRestricted {
            let possible = (1...12).contains { m in
                months & (1 << m) != 0 && (1...Self.maxDays(month: m)).contains { d in daysOfMonth & (1 << d) != 0 }
            }
            if !possible { throw bad("no month of the ones given has any of the days given, so it would never fire") }
        }
    }

    private struct FieldError: Error { let detail: String }

    /// Quotes text for an error message: control characters escaped, at most 80 characters.
    static func shown(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars.prefix(80) {
            if scalar.properties.generalCategory == .control || scalar == "\"" {
                out += scalar == "\"" ? "\\\"" : "\\u{\(String(scalar.value, radix: 16))}"
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return text.unicodeScalars.count > 80 ? out + "…" : out
    }

    private static func value(_ text: Substring, _ field: Field) throws(FieldError) -> Int {
        if let n = Int(text) {
            guard field.range.contains(n) else {
                throw FieldError(detail: "\(n) is outside \(field.range.lowerBound)–\(field.range.upperBound)")
            }
            return n
        }
        if let i = field.names.firstIndex(of: text.uppercased()) { return field.range.lowerBound + i }
        let what = field.names.isEmpty ? "a number" : "a number or a name (\(field.names.first!)…\(field.names.last!))"
        throw FieldError(detail: "\"\(shown(String(text)))\" is not \(what)")
    }

    private static func parse(_ text: String, _ field: Field) throws(FieldError) -> UInt64 {
        guard !text.isEmpty else { throw FieldError(detail: "empty") }
        var mask: UInt64 = 0
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard !item.isEmpty else { throw FieldError(detail: "an empty item in a list") }
            let stepParts = item.split(separator: "/", omittingEmptySubsequences: false)
            guard stepParts.count <= 2 else { throw FieldError(detail: "\"\(shown(String(item)))\" has more than one /") }
            var step = 1
            if stepParts.count == 2 {
                guard let s = Int(stepParts[1]), s >= 1 else {
                    throw FieldError(detail: "the step in \"\(shown(String(item)))\" must be a whole number of 1 or more")
                }
                guard s <= field.range.upperBound else {
                    throw FieldError(detail: "the step \(s) is larger than the field's range \(field.range.lowerBound)–\(field.range.upperBound)")
                }
                step = s
            }
            let base = stepParts[0]
            var low: Int
            var high: Int
            if base == "*" || base == "?" {
                (low, high) = (field.range.lowerBound, field.range.upperBound)
                // `*` in day-of-week is 0–6: 7 is Sunday again.
                if field.range.upperBound == 7 { high = 6 }
            } else if let dash = base.firstIndex(of: "-") {
                low = try value(base[..<dash], field)
                high = try value(base[base.index(after: dash)...], field)
                guard low <= high else { throw FieldError(detail: "the range \(low)-\(high) runs backwards") }
            } else {
                low = try value(base, field)
                // `5/15`: from 5 to the end in steps of 15.
                high = stepParts.count == 2 ? field.range.upperBound : low
            }
            var v = low
            while v <= high {
                mask |= 1 << UInt64(v)
                v += step
            }
        }
        return mask
    }

    // MARK: - Next time

    /// The first time strictly after `instant` that matches, in `zone` (UTC when nil); nil when
    /// none comes within 10 years.
    public func next(after instant: Date, in zone: TimeZone? = nil) -> Date? {
        let ms = Int64((instant.timeIntervalSince1970 * 1000).rounded(.down))
        return nextMs(after: ms, in: zone).map { Date(timeIntervalSince1970: Double($0) / 1000) }
    }

    /// ``next(after:in:)`` in milliseconds since the epoch (whole seconds).
    func nextMs(after ms: Int64, in zone: TimeZone?) -> Int64? {
        let t = ms >= 0 ? ms / 1000 : (ms - 999) / 1000  // floor, whole seconds
        guard let zone, zone.identifier != "UTC", zone.identifier != "GMT" else {
            return nextWall(after: t, limit: t + Self.horizon).map { $0 * 1000 }
        }
        var wall = t + Int64(zone.secondsFromGMT(for: Date(timeIntervalSince1970: Double(t))))
        let limit = wall + Self.horizon
        // Bounded: each round moves the wall clock forward; an ambiguous or skipped time settles
        // in one or two rounds.
        for _ in 0..<8 {
            guard let w = nextWall(after: wall, limit: limit) else { return nil }
            if let i = Self.instant(ofWall: w, in: zone, after: t) { return i * 1000 }
            wall = w
        }
        return nil
    }

    private static let horizon: Int64 = 10 * 366 * 86400

    /// The instant (seconds) a wall-clock time `wall` names in `zone`, later than `t`: the first
    /// of two when a fall-back repeats it, the end of the gap when a spring-forward skips it;
    /// nil when both occurrences are not later than `t`.
    static func instant(ofWall wall: Int64, in zone: TimeZone, after t: Int64) -> Int64? {
        func offset(_ s: Int64) -> Int64 { Int64(zone.secondsFromGMT(for: Date(timeIntervalSince1970: Double(s)))) }
        let before = offset(wall - 86400)
        let after = offset(wall + 86400)
        var valid: [Int64] = []
        for o in Set([before, after, offset(wall)]) where offset(wall - o) == o { valid.append(wall - o) }
        valid.sort()
        if !valid.isEmpty { return valid.first { $0 > t } }
        // In a gap: the first instant whose offset is the later one (binary search to the second).
        var low = wall - max(before, after)
        var high = wall - min(before, after)
        while high - low > 1 {
            let mid = low + (high - low) / 2
            if offset(mid) == after { high = mid } else { low = mid }
        }
        return high > t ? high : nil
    }

    /// The first wall-clock second after `wall` (seconds of a naive calendar, no zone) that
    /// matches, up to `limit`.
    func nextWall(after wall: Int64, limit: Int64) -> Int64? {
        var (days, rest) = Self.divide(wall + 1, 86400)
        var (y, m, d) = Self.civil(days)
        var hour = Int(rest / 3600)
        var minute = Int(rest % 3600 / 60)
        var second = Int(rest % 60)
        func nextDay() {
            days += 1
            (y, m, d) = Self.civil(days)
            (hour, minute, second) = (0, 0, 0)
        }
        // Each round advances at least one field; 10 years of days is the bound.
        for _ in 0..<40_000 {
            if days * 86400 > limit { return nil }
            if months & (1 << UInt64(m)) == 0 {
                // The first day of the next month.
                days += Int64(Self.daysIn(year: y, month: m) - d + 1)
                (y, m, d) = Self.civil(days)
                (hour, minute, second) = (0, 0, 0)
                continue
            }
            if !dayMatches(days: days, day: d) {
                nextDay()
                continue
            }
            guard let h = Self.firstBit(hours, from: hour, upTo: 23) else {
                nextDay()
                continue
            }
            if h != hour { (hour, minute, second) = (h, 0, 0) }
            guard let mi = Self.firstBit(minutes, from: minute, upTo: 59) else {
                if hour == 23 { nextDay() } else { (hour, minute, second) = (hour + 1, 0, 0) }
                continue
            }
            if mi != minute { (minute, second) = (mi, 0) }
            guard let s = Self.firstBit(seconds, from: second, upTo: 59) else {
                if minute == 59 {
                    if hour == 23 { nextDay() } else { (hour, minute, second) = (hour + 1, 0, 0) }
                } else {
                    (minute, second) = (minute + 1, 0)
                }
                continue
            }
            return days * 86400 + Int64(hour * 3600 + minute * 60 + s)
        }
        return nil
    }

    private func dayMatches(days: Int64, day: Int) -> Bool {
        let byMonth = daysOfMonth & (1 << UInt64(day)) != 0
        let weekday = Int(Self.divide(days + 4, 7).1)  // 1970-01-01 was a Thursday
        let byWeek = daysOfWeek & (1 << UInt64(weekday)) != 0
        switch (dayOfMonthRestricted, dayOfWeekRestricted) {
        case (true, true): return byMonth || byWeek
        case (true, false): return byMonth
        case (false, true): return byWeek
        case (false, false): return true
        }
    }

    private static func firstBit(_ mask: UInt64, from: Int, upTo: Int) -> Int? {
        guard from <= upTo else { return nil }
        let shifted = mask >> UInt64(from)
        guard shifted != 0 else { return nil }
        let bit = from + shifted.trailingZeroBitCount
        return bit <= upTo ? bit : nil
    }

    static func divide(_ a: Int64, _ b: Int64) -> (Int64, Int64) {
        let q = a >= 0 ? a / b : -((-a + b - 1) / b)
        return (q, a - q * b)
    }

    static func isLeap(_ y: Int64) -> Bool { (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 }

    static func daysIn(year: Int64, month: Int) -> Int {
        switch month {
        case 2: isLeap(year) ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    private static func maxDays(month: Int) -> Int { month == 2 ? 29 : daysIn(year: 2001, month: month) }

    /// Civil date of a day count from 1970-01-01 (proleptic Gregorian).
    static func civil(_ days: Int64) -> (Int64, Int, Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = Int(doy - (153 * mp + 2) / 5 + 1)
        let m = Int(mp < 10 ? mp + 3 : mp - 9)
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }
}
