import Foundation
import Testing

@testable import JobQ

/// The cron parser, next-time computation and a schedule step's plan, against cases written
/// from the rules (`docs/schedules.md`), not from the code's output.
@Suite("Schedules: cron, time zones, intervals, misfire plans")
struct ScheduleTimingTests {
    static func ms(_ iso: String) -> Int64 {
        let f = ISO8601DateFormatter()
        return f.date(from: iso)!.epochMs
    }

    static func next(_ expression: String, after iso: String, zone: String = "UTC") throws -> String? {
        let timing = try ScheduleSpec.cron(expression, timeZone: zone).timing()
        return timing.next(after: ms(iso)).map(ScheduleTiming.iso)
    }

    struct Case: Sendable, CustomTestStringConvertible {
        let expression: String
        let zone: String
        let after: String
        let expected: String
        let why: String
        var testDescription: String { "\(expression) [\(zone)] after \(after): \(why)" }
    }

    static let cases: [Case] = [
        // Steps, lists, ranges.
        .init(expression: "*/7 * * * *", zone: "UTC", after: "2026-01-01T00:00:00Z", expected: "2026-01-01T00:07:00Z", why: "*/7 counts from 0"),
        .init(expression: "*/7 * * * *", zone: "UTC", after: "2026-01-01T00:56:00Z", expected: "2026-01-01T01:00:00Z", why: "after 56 the hour rolls"),
        .init(expression: "5/15 * * * *", zone: "UTC", after: "2026-01-01T00:06:00Z", expected: "2026-01-01T00:20:00Z", why: "a/n runs from a"),
        .init(
            expression: "10-40/10 8,17 * * *", zone: "UTC", after: "2026-01-01T08:40:00Z", expected: "2026-01-01T17:10:00Z", why: "range with step, hour list"),
        // Month ends and Feb 29.
        .init(expression: "0 0 29 2 *", zone: "UTC", after: "2026-03-01T00:00:00Z", expected: "2028-02-29T00:00:00Z", why: "the next leap day"),
        .init(expression: "0 0 31 * *", zone: "UTC", after: "2026-04-01T00:00:00Z", expected: "2026-05-31T00:00:00Z", why: "April has no 31st"),
        .init(expression: "0 0 30 * *", zone: "UTC", after: "2026-01-30T00:00:00Z", expected: "2026-03-30T00:00:00Z", why: "February has no 30th"),
        .init(expression: "59 23 31 12 *", zone: "UTC", after: "2026-12-31T23:59:00Z", expected: "2027-12-31T23:59:00Z", why: "the year rolls"),
        // The day-of-month / day-of-week OR rule.
        .init(expression: "0 0 13 * FRI", zone: "UTC", after: "2026-02-01T00:00:00Z", expected: "2026-02-06T00:00:00Z", why: "a Friday before the 13th"),
        .init(expression: "0 0 13 * 5", zone: "UTC", after: "2026-03-07T00:00:00Z", expected: "2026-03-13T00:00:00Z", why: "the 13th (a Friday) either way"),
        .init(expression: "0 0 13 * 1", zone: "UTC", after: "2026-04-07T00:00:00Z", expected: "2026-04-13T00:00:00Z", why: "the 13th, a Monday"),
        .init(expression: "0 0 13 * 1", zone: "UTC", after: "2026-04-13T00:00:00Z", expected: "2026-04-20T00:00:00Z", why: "the next Monday"),
        .init(expression: "0 0 13 * *", zone: "UTC", after: "2026-02-01T00:00:00Z", expected: "2026-02-13T00:00:00Z", why: "DOW * leaves only the 13th"),
        .init(expression: "0 0 * * 7", zone: "UTC", after: "2026-02-01T00:00:00Z", expected: "2026-02-08T00:00:00Z", why: "7 is Sunday; strictly after"),
        .init(
            expression: "0 0 */2 * MON", zone: "UTC", after: "2026-02-01T00:00:00Z", expected: "2026-02-02T00:00:00Z", why: "*/2 counts as *, so only Mondays"),
        // Names, seconds, macros.
        .init(expression: "0 9 * jan-MAR Mon-Fri", zone: "UTC", after: "2026-03-31T09:00:00Z", expected: "2027-01-01T09:00:00Z", why: "names, any case"),
        .init(expression: "*/15 * * * * *", zone: "UTC", after: "2026-01-01T00:00:00Z", expected: "2026-01-01T00:00:15Z", why: "a seconds field"),
        .init(expression: "30 0 0 * * *", zone: "UTC", after: "2026-01-01T00:00:30Z", expected: "2026-01-02T00:00:30Z", why: "seconds, daily"),
        .init(expression: "@hourly", zone: "UTC", after: "2026-01-01T10:30:00Z", expected: "2026-01-01T11:00:00Z", why: "@hourly"),
        .init(expression: "@weekly", zone: "UTC", after: "2026-01-07T00:00:00Z", expected: "2026-01-11T00:00:00Z", why: "@weekly is Sunday midnight"),
        .init(expression: "@yearly", zone: "UTC", after: "2026-01-01T00:00:00Z", expected: "2027-01-01T00:00:00Z", why: "@yearly"),
        // Europe/Berlin: spring forward 2026-03-29 02:00 CET → 03:00 CEST (01:00Z).
        .init(
            expression: "30 2 * * *", zone: "Europe/Berlin", after: "2026-03-28T12:00:00Z", expected: "2026-03-29T01:00:00Z",
            why: "02:30 is skipped: fires at 03:00 CEST"),
        .init(
            expression: "30 2 * * *", zone: "Europe/Berlin", after: "2026-03-29T01:00:00Z", expected: "2026-03-30T00:30:00Z",
            why: "then 02:30 CEST the next day"),
        .init(
            expression: "*/15 * * * *", zone: "Europe/Berlin", after: "2026-03-29T00:45:00Z", expected: "2026-03-29T01:00:00Z",
            why: "the whole skipped hour fires once, at 03:00"),
        .init(expression: "*/15 * * * *", zone: "Europe/Berlin", after: "2026-03-29T01:00:00Z", expected: "2026-03-29T01:15:00Z", why: "then 03:15 CEST"),
        // Europe/Berlin: fall back 2026-10-25 03:00 CEST → 02:00 CET (01:00Z).
        .init(expression: "30 2 * * *", zone: "Europe/Berlin", after: "2026-10-24T12:00:00Z", expected: "2026-10-25T00:30:00Z", why: "the first 02:30 (CEST)"),
        .init(
            expression: "30 2 * * *", zone: "Europe/Berlin", after: "2026-10-25T00:30:00Z", expected: "2026-10-26T01:30:00Z", why: "not the repeated 02:30 CET"),
        .init(
            expression: "*/30 * * * *", zone: "Europe/Berlin", after: "2026-10-25T00:30:00Z", expected: "2026-10-25T02:00:00Z",
            why: "the repeated hour fires once"),
        // America/New_York: spring forward 2026-03-08 02:00 EST → 03:00 EDT (07:00Z).
        .init(
            expression: "0 2 * * *", zone: "America/New_York", after: "2026-03-07T12:00:00Z", expected: "2026-03-08T07:00:00Z",
            why: "02:00 is skipped: 03:00 EDT"),
        .init(
            expression: "0 * * * *", zone: "America/New_York", after: "2026-03-08T06:30:00Z", expected: "2026-03-08T07:00:00Z", why: "hourly: 03:00 EDT, once"),
        .init(expression: "0 * * * *", zone: "America/New_York", after: "2026-03-08T07:00:00Z", expected: "2026-03-08T08:00:00Z", why: "then 04:00 EDT"),
        // America/New_York: fall back 2026-11-01 02:00 EDT → 01:00 EST (06:00Z).
        .init(
            expression: "30 1 * * *", zone: "America/New_York", after: "2026-10-31T12:00:00Z", expected: "2026-11-01T05:30:00Z", why: "the first 01:30 (EDT)"),
        .init(
            expression: "30 1 * * *", zone: "America/New_York", after: "2026-11-01T05:30:00Z", expected: "2026-11-02T06:30:00Z", why: "the next day's 01:30 EST"
        ),
        .init(
            expression: "0 * * * *", zone: "America/New_York", after: "2026-11-01T05:00:00Z", expected: "2026-11-01T07:00:00Z",
            why: "01:00 EST (repeat) skipped"),
        // A zone without DST, far from UTC.
        .init(expression: "0 9 * * *", zone: "Asia/Kolkata", after: "2026-06-01T00:00:00Z", expected: "2026-06-01T03:30:00Z", why: "UTC+5:30"),
    ]

    @Test("next time after an instant", arguments: cases)
    func nextTime(_ c: Case) throws {
        #expect(try Self.next(c.expression, after: c.after, zone: c.zone) == c.expected)
    }

    @Test(
        "invalid expressions are refused with the field named",
        arguments: [
            ("61 * * * *", "field 1 (minute): 61 is outside 0–59"),
            ("* * * *", "4 fields"),
            ("* * * * * * *", "7 fields"),
            ("0 0 30 2 *", "never fire"),
            ("0 0 31 4,6,9,11 *", "never fire"),
            ("@fortnightly", "unknown macro"),
            ("*/0 * * * *", "step"),
            ("5-1 * * * *", "runs backwards"),
            ("0 0 * FOO *", "field 4 (month): \"FOO\" is not a number or a name"),
            ("0 25 * * *", "field 2 (hour)"),
            ("0 0 * * 8", "field 5 (day of week): 8 is outside 0–7"),
            ("60 * * * * *", "field 1 (second)"),
            ("1,,2 * * * *", "empty item"),
            ("", "0 fields"),
        ])
    func refused(_ expression: String, _ expected: String) {
        do {
            _ = try CronExpression(expression)
            Issue.record("\(expression) was accepted")
        } catch {
            #expect(error.code == .invalidSchedule)
            #expect(error.detail.contains(expected), "\(error.detail)")
        }
    }

    @Test("an unknown zone and a sub-second interval are refused; hostile text is quoted, not echoed raw")
    func refusedSpecs() {
        #expect(throws: JobQError.self) { try ScheduleSpec.cron("0 0 * * *", timeZone: "Mars/Olympus_Mons").timing() }
        #expect(throws: JobQError.self) { try ScheduleSpec.every(.milliseconds(500)).timing() }
        do {
            _ = try CronExpression("0 0 * \u{1b}[31m *")
        } catch {
            #expect(!error.detail.contains("\u{1b}"))
        }
    }

    @Test("every: aligned to the epoch, or to its start")
    func every() throws {
        let five = try ScheduleSpec.every(.minutes(5)).timing()
        #expect(five.next(after: Self.ms("2026-01-01T00:02:00Z")) == Self.ms("2026-01-01T00:05:00Z"))
        #expect(five.next(after: Self.ms("2026-01-01T00:05:00Z")) == Self.ms("2026-01-01T00:10:00Z"))
        let start = Date(timeIntervalSince1970: Double(Self.ms("2026-01-01T00:01:30Z")) / 1000)
        let offset = try ScheduleSpec.every(.minutes(5), startingAt: start).timing()
        #expect(offset.next(after: Self.ms("2026-01-01T00:02:00Z")) == Self.ms("2026-01-01T00:06:30Z"))
        #expect(offset.next(after: Self.ms("2025-12-31T00:00:00Z")) == Self.ms("2026-01-01T00:01:30Z"), "before its start: the start")
    }

    @Test("tick job ids name the schedule and the tick in UTC; jitter is the same everywhere and within bounds")
    func idsAndJitter() {
        #expect(ScheduleTiming.jobID(schedule: "nightly", tick: Self.ms("2026-12-02T02:00:00Z")) == "nightly@2026-12-02T02:00:00Z")
        #expect(ScheduleTiming.iso(Self.ms("2026-12-02T02:00:00Z") + 250) == "2026-12-02T02:00:00.250Z")
        var seen = Set<Int64>()
        for tick in stride(from: Int64(0), to: 100_000, by: 1000) {
            let j = ScheduleTiming.jitter(schedule: "s", tick: tick, upTo: 30_000)
            #expect(j >= 0 && j <= 30_000)
            #expect(j == ScheduleTiming.jitter(schedule: "s", tick: tick, upTo: 30_000))
            seen.insert(j)
        }
        #expect(seen.count > 50, "jitter spreads")
    }

    static func stored(_ options: ScheduleOptions, every: Duration = .minutes(1), nextTick: String) -> StoredSchedule {
        var fields: [String: [UInt8]] = [
            ScheduleField.kind.rawValue: Array("every".utf8), ScheduleField.expression.rawValue: Array(String(every.milliseconds).utf8),
            ScheduleField.name.rawValue: Array("job".utf8), ScheduleField.version.rawValue: Array("1".utf8),
            ScheduleField.nextTick.rawValue: Array(String(ms(nextTick)).utf8), ScheduleField.misfire.rawValue: Array(options.misfire.description.utf8),
            ScheduleField.overlap.rawValue: Array(options.overlap.rawValue.utf8),
        ]
        fields[ScheduleField.grace.rawValue] = Array(String(options.misfireGrace.milliseconds).utf8)
        return StoredSchedule(id: "s", fields: fields)!
    }

    static func plan(_ options: ScheduleOptions, now: String, nextTick: String, every: Duration = .minutes(1)) throws -> ScheduleStep {
        let s = stored(options, every: every, nextTick: nextTick)
        return Scheduling.plan(s, timing: try s.spec.timing(), now: ms(now))
    }

    @Test("misfire: ticks later than the grace follow the policy; those within it are made, late; one tick ahead")
    func misfirePlans() throws {
        // Every minute; ten ticks (09:50–09:59) are more than 60 s late at 10:00:30; 10:00 is within the grace.
        let skip = try Self.plan(.init(misfire: .skip), now: "2026-01-01T10:00:30Z", nextTick: "2026-01-01T09:50:00Z")
        #expect(skip.ticks.map { ScheduleTiming.iso($0.tick) } == ["2026-01-01T10:00:00Z"])
        #expect(skip.misfired == 10)
        #expect(skip.firstMissed == Self.ms("2026-01-01T09:50:00Z") && skip.lastMissed == Self.ms("2026-01-01T09:59:00Z"))
        #expect(skip.nextTick == Self.ms("2026-01-01T10:01:00Z"))
        #expect(skip.advanceAt == Self.ms("2026-01-01T10:00:55Z"), "the next one is made 5 s ahead (later than halfway)")

        let once = try Self.plan(.init(misfire: .fireOnce), now: "2026-01-01T10:00:30Z", nextTick: "2026-01-01T09:50:00Z")
        #expect(once.ticks.map { ScheduleTiming.iso($0.tick) } == ["2026-01-01T09:50:00Z", "2026-01-01T10:00:00Z"])
        #expect(once.misfired == 9)

        let catchUp = try Self.plan(.init(misfire: .catchUp(max: 3)), now: "2026-01-01T10:00:30Z", nextTick: "2026-01-01T09:50:00Z")
        #expect(
            catchUp.ticks.map { ScheduleTiming.iso($0.tick) } == [
                "2026-01-01T09:57:00Z", "2026-01-01T09:58:00Z", "2026-01-01T09:59:00Z", "2026-01-01T10:00:00Z",
            ])
        #expect(catchUp.misfired == 7)
        #expect(catchUp.ticks.map(\.jobID).first == "s@2026-01-01T09:57:00Z")

        let overlap = try Self.plan(.init(overlap: .skipIfRunning), now: "2026-01-01T10:00:30Z", nextTick: "2026-01-01T10:00:00Z")
        #expect(overlap.ticks.count == 1 && overlap.misfired == 0)
        #expect(overlap.advanceAt == Self.ms("2026-01-01T10:01:00Z"), "decided at its time, not ahead")

        // Under an overlap policy, late ticks made together would overlap: one is made.
        let lateSkip = try Self.plan(.init(overlap: .skipIfRunning), now: "2026-01-01T10:00:30Z", nextTick: "2026-01-01T09:59:50Z")
        #expect(lateSkip.ticks.map { ScheduleTiming.iso($0.tick) } == ["2026-01-01T09:59:50Z"] && lateSkip.misfired == 1, "10:00 too is due: one of the two")
        let lateSkipMany = try Self.plan(
            .init(overlap: .skipIfRunning), now: "2026-01-01T10:00:30Z", nextTick: "2026-01-01T09:59:45Z", every: .seconds(15))
        #expect(lateSkipMany.ticks.map { ScheduleTiming.iso($0.tick) } == ["2026-01-01T09:59:45Z"] && lateSkipMany.misfired == 3)
        let lateCancel = try Self.plan(
            .init(overlap: .cancelPrevious), now: "2026-01-01T10:00:30Z", nextTick: "2026-01-01T09:59:45Z", every: .seconds(15))
        #expect(lateCancel.ticks.map { ScheduleTiming.iso($0.tick) } == ["2026-01-01T10:00:30Z"] && lateCancel.misfired == 3)

        let ahead = try Self.plan(.init(), now: "2026-01-01T10:00:57Z", nextTick: "2026-01-01T10:01:00Z")
        #expect(ahead.ticks.map { ScheduleTiming.iso($0.due) } == ["2026-01-01T10:01:00Z"], "made ahead, due on time")
        #expect(ahead.advanceAt == Self.ms("2026-01-01T10:01:55Z"))

        let second = try Self.plan(.init(), now: "2026-01-01T10:00:00Z", nextTick: "2026-01-01T10:00:01Z", every: .seconds(1))
        #expect(second.ticks.count == 1, "one tick ahead at a time, even when several fit in the lead")
        #expect(second.advanceAt == Self.ms("2026-01-01T10:00:01Z") + 500, "the next is made once that one is due, halfway to its own")

        let early = try Self.plan(.init(), now: "2026-01-01T10:00:00Z", nextTick: "2026-01-01T11:00:00Z")
        #expect(early.ticks.isEmpty && early.nextTick == Self.ms("2026-01-01T11:00:00Z"), "nothing before its lead")
    }

    @Test("a per-second schedule missed for weeks: the step is bounded and catches up only the latest")
    func longOutage() throws {
        let step = try Self.plan(.init(misfire: .catchUp(max: 2)), now: "2026-03-01T00:00:30Z", nextTick: "2026-01-01T00:00:00Z", every: .seconds(1))
        #expect(step.ticks.count <= Scheduling.ticksPerStep)
        #expect(step.ticks.first.map { ScheduleTiming.iso($0.tick) } == "2026-02-28T23:59:29Z")
        #expect(step.misfired > 200_000)
        #expect(step.nextTick > Self.ms("2026-03-01T00:00:30Z") || step.advanceAt == Self.ms("2026-03-01T00:00:30Z"))
    }
}
