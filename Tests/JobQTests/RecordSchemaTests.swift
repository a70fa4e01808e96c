import Foundation
import Testing

@testable import JobQ
@testable import JobQRedis

/// The record's field names live in `RecordSchema.swift` and `Lua/include/record.lua`; these
/// tests hold the two together, keep every other file from spelling a name itself, and keep
/// `docs/data-model.md` complete.
@Suite("Record schema: one Swift table, one Lua table, one document")
struct RecordSchemaTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let lua = root.appendingPathComponent("Sources/JobQ/Lua")

    /// `local NAME = { key = 'value', … }` from record.lua, as key → value.
    static func luaTable(_ name: String) throws -> [String: String] {
        let text = try String(contentsOf: lua.appendingPathComponent("include/record.lua"), encoding: .utf8)
        guard let start = text.range(of: "local \(name) = {"), let end = text.range(of: "}", range: start.upperBound..<text.endIndex) else {
            Issue.record("record.lua has no table \(name)")
            return [:]
        }
        var table: [String: String] = [:]
        for match in text[start.upperBound..<end.lowerBound].matches(of: /(\w+)\s*=\s*'([^']*)'/) {
            #expect(table[String(match.1)] == nil, "\(name).\(match.1) is defined twice")
            table[String(match.1)] = String(match.2)
        }
        return table
    }

    static func swiftTable<T: CaseIterable & RawRepresentable>(_ type: T.Type) -> [String: String] where T.RawValue == String {
        Dictionary(uniqueKeysWithValues: T.allCases.map { ("\($0)", $0.rawValue) })
    }

    @Test("record.lua's F, EV and META tables equal JobField, EventField and QueueMetaField, name for name")
    func luaMatchesSwift() throws {
        #expect(try Self.luaTable("F") == Self.swiftTable(JobField.self))
        #expect(try Self.luaTable("EV") == Self.swiftTable(EventField.self))
        #expect(try Self.luaTable("META") == Self.swiftTable(QueueMetaField.self))
        #expect(try Self.luaTable("SCHED") == Self.swiftTable(ScheduleField.self))
        // SPEC lists the upsert's fields through SCHED, in ScheduleField.spec's order.
        let text = try String(contentsOf: Self.lua.appendingPathComponent("include/record.lua"), encoding: .utf8)
        let spec = try #require(text.firstMatch(of: /local SPEC = \{([^}]*)\}/))
        let named = spec.1.matches(of: /SCHED\.(\w+)/).map { String($0.1) }
        #expect(named == ScheduleField.spec.map { "\($0)" })
        for table in [
            Self.swiftTable(JobField.self), Self.swiftTable(EventField.self), Self.swiftTable(QueueMetaField.self), Self.swiftTable(ScheduleField.self),
        ] {
            #expect(Set(table.values).count == table.count, "no two fields of one record share a stored name")
        }
    }

    @Test("no script spells a field name itself: every one goes through record.lua's tables")
    func scriptsUseTheTables() throws {
        var names = Set(JobField.allCases.map(\.rawValue))
        names.formUnion(EventField.allCases.map(\.rawValue))
        names.formUnion(QueueMetaField.allCases.map(\.rawValue))
        names.formUnion(ScheduleField.allCases.map(\.rawValue))
        // Also a value: the `paused` event's kind.
        names.remove("paused")
        var files = try FileManager.default.contentsOfDirectory(atPath: Self.lua.path).filter { $0.hasSuffix(".lua") }
        files += try FileManager.default.contentsOfDirectory(atPath: Self.lua.appendingPathComponent("include").path)
            .filter { $0.hasSuffix(".lua") && $0 != "record.lua" }.map { "include/" + $0 }
        #expect(files.count > 20)
        for file in files {
            let text = try String(contentsOf: Self.lua.appendingPathComponent(file), encoding: .utf8)
            // Code only: the header (`--[[ … ]]`) and `--` comments may name fields in prose.
            var code = text
            if let header = code.range(of: "]]"), code.hasPrefix("--[[") { code = String(code[header.upperBound...]) }
            for (number, line) in code.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let statement = line.split(separator: "--", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
                for match in statement.matches(of: /'([a-zA-Z]+)'/) where names.contains(String(match.1)) {
                    Issue.record("\(file), code line \(number + 1): the field '\(match.1)' is spelled out; use record.lua's F, EV or META")
                }
            }
        }
    }

    @Test("Swift code reads stored fields through the schema enums, never by a literal subscript")
    func swiftUsesTheEnums() throws {
        var names = Set(JobField.allCases.map(\.rawValue))
        names.formUnion(EventField.allCases.map(\.rawValue))
        names.formUnion(QueueMetaField.allCases.map(\.rawValue))
        let sources = Self.root.appendingPathComponent("Sources")
        let enumerator = FileManager.default.enumerator(atPath: sources.path)
        var checked = 0
        while let path = enumerator?.nextObject() as? String {
            guard path.hasSuffix(".swift"), !path.hasSuffix("RecordSchema.swift") else { continue }
            let text = try String(contentsOf: sources.appendingPathComponent(path), encoding: .utf8)
            checked += 1
            for match in text.matches(of: /(fields|event|e|f)\["([a-z]{1,3})"\]/) where names.contains(String(match.2)) {
                Issue.record("\(path): \(match.0) reads a stored field by its literal name; use JobField, EventField or QueueEvent's accessors")
            }
        }
        #expect(checked > 50)
    }

    @Test("docs/data-model.md has a row for every field, with its stored name and its name in code")
    func documented() throws {
        let doc = try String(contentsOf: Self.root.appendingPathComponent("docs/data-model.md"), encoding: .utf8)
        func check<T: CaseIterable & RawRepresentable>(_ type: T.Type) where T.RawValue == String {
            for field in T.allCases {
                #expect(doc.contains("| `\(field.rawValue)` | `\(field)` |"), "docs/data-model.md documents \(T.self).\(field) (`\(field.rawValue)`)")
            }
        }
        check(JobField.self)
        check(EventField.self)
        check(QueueMetaField.self)
        check(ScheduleField.self)
        check(HeartbeatField.self)
    }

    @Test("the stored names are a wire format: pinned here, so a rename (which a running fleet of older workers would not read) cannot slip through")
    func pinned() {
        #expect(
            JobField.allCases.map(\.rawValue).joined(separator: " ")
                == "n d e p a bo to ms rc rf s ct du am sc st ft w x pp pm cp r er ed pe pd cr cx cb g sd tk")
        #expect(EventField.allCases.map(\.rawValue).joined(separator: " ") == "ev id n at w er ed r pp pm dl sc by from state count g sd tk tl")
        #expect(
            ScheduleField.allCases.map(\.rawValue).joined(separator: " ")
                == "k x z an n d e o p mf ov jt gr v ps nx pj pt lj lt ct ut fc sk sr sa")
        #expect(QueueMetaField.allCases.map(\.rawValue).joined(separator: " ") == "paused kc kf kx cc rn rw tu mw gc gn gw")
        #expect(
            HeartbeatField.allCases.map(\.rawValue).joined(separator: " ")
                == "host pid queues concurrency active started lastSeen state wantPaused wantConcurrency controlSeq")
    }

    @Test("defaults in the schema are the ones the code applies to a record without the field")
    func defaults() throws {
        let bare = try #require(Job(id: "x", queue: "q", fields: [JobField.state.rawValue: Array("waiting".utf8)]))
        #expect(JobField.attempts.defaultValue == String(bare.options.attempts))
        #expect(JobField.priority.defaultValue == String(bare.options.priority.value))
        #expect(JobField.maxStalls.defaultValue == String(bare.options.maxStalls))
        #expect(JobField.timeout.defaultValue == String(bare.options.timeout.components.seconds * 1000))
        #expect(JobField.backoff.defaultValue == bare.options.backoff.encoded)
        #expect(JobField.attemptsMade.defaultValue == String(bare.attemptsMade))
        #expect(JobOptions().storedFields.isEmpty, "an all-default job stores no option field")
    }
}
