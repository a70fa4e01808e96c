import Foundation
import Testing

/// The documentation stays true to the code and to itself: the README's headline figures are
/// `BENCHMARKS.md`'s, every relative link resolves, and nothing points outside the repository.
@Suite("Documentation", .awaitedTeardown)
struct DocumentationTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func markdownFiles() throws -> [URL] {
        let docs = try FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent("docs").path)
            .filter { $0.hasSuffix(".md") }.map { root.appendingPathComponent("docs").appendingPathComponent($0) }
        return docs + ["README.md", "CHANGELOG.md", "CONTRIBUTING.md", "BENCHMARKS.md"].map { root.appendingPathComponent($0) }
    }

    @Test("the README's headline table is what BENCHMARKS.md says (jobq-bench headline --check), and the check catches a changed figure")
    func headline() async throws {
        let readme = Self.root.appendingPathComponent("README.md").path
        let benchmarks = Self.root.appendingPathComponent("BENCHMARKS.md").path
        let same = try await runTool("jobq-bench", ["headline", "--check", "--readme", readme, "--benchmarks-file", benchmarks])
        #expect(same.code == 0, "\(same.output)")

        // A copy whose first jobq figure is off by one digit must fail the check.
        let text = try String(contentsOfFile: readme, encoding: .utf8)
        let row = try #require(text.split(separator: "\n").first { $0.hasPrefix("| drain rate") })
        let cells = row.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
        let changed = text.replacingOccurrences(of: "| \(cells[1]) |", with: "| 1\(cells[1]) |")
        #expect(changed != text)
        let copy = FileManager.default.temporaryDirectory.appendingPathComponent("jobq-readme-\(UUID().uuidString).md").path
        defer { try? FileManager.default.removeItem(atPath: copy) }
        try changed.write(toFile: copy, atomically: true, encoding: .utf8)
        let drifted = try await runTool("jobq-bench", ["headline", "--check", "--readme", copy, "--benchmarks-file", benchmarks])
        #expect(drifted.code == 1, "\(drifted.output)")
        #expect(drifted.output.contains("differs"))
    }

    @Test("every relative link in the README and docs/ points at a file that exists")
    func links() throws {
        var checked = 0
        for file in try Self.markdownFiles() {
            let text = try String(contentsOf: file, encoding: .utf8)
            for match in text.matches(of: /\]\(([^)#\s]+)(#[^)]*)?\)/) {
                let target = String(match.1)
                if target.hasPrefix("http://") || target.hasPrefix("https://") { continue }
                let resolved = file.deletingLastPathComponent().appendingPathComponent(target).standardizedFileURL
                #expect(FileManager.default.fileExists(atPath: resolved.path), "\(file.lastPathComponent) links to \(target), which does not exist")
                #expect(resolved.path.hasPrefix(Self.root.standardizedFileURL.path), "\(file.lastPathComponent) links outside the repository: \(target)")
                checked += 1
            }
        }
        #expect(checked > 20)
    }

    @Test("no file cites a design note outside the repository or an issue number")
    func selfContained() throws {
        // Spelled in pieces so this file does not match itself.
        let patterns = ["DESIGN" + " §", "HIREDIS" + "-NOTES", "STYLE" + ".md", "../" + "shared/"]
        let issue = try Regex("issue" + " [0-9]")
        var checked = 0
        for folder in ["Sources", "Tests", "docs", "config", "deploy", "scripts", ".ci"] {
            let base = Self.root.appendingPathComponent(folder)
            let enumerator = FileManager.default.enumerator(atPath: base.path)
            while let path = enumerator?.nextObject() as? String {
                let url = base.appendingPathComponent(path)
                var isDirectory: ObjCBool = false
                guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory), !isDirectory.boolValue,
                    let text = try? String(contentsOf: url, encoding: .utf8)
                else { continue }
                checked += 1
                for pattern in patterns where text.contains(pattern) {
                    Issue.record("\(folder)/\(path) contains \"\(pattern)\"")
                }
                if text.contains(issue) { Issue.record("\(folder)/\(path) names an issue number") }
            }
        }
        for file in try Self.markdownFiles() + [Self.root.appendingPathComponent("Package.swift")] {
            let text = try String(contentsOf: file, encoding: .utf8)
            for pattern in patterns where text.contains(pattern) { Issue.record("\(file.lastPathComponent) contains \"\(pattern)\"") }
            if text.contains(issue) { Issue.record("\(file.lastPathComponent) names an issue number") }
        }
        #expect(checked > 100)
    }
}
