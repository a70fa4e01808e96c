import Foundation

/// The README's headline table, made from `BENCHMARKS.md` so the two cannot drift: each row is
/// one figure of one scenario's table there, with its median, the reference it was measured
/// against in the same run (named as `BENCHMARKS.md` names it) and the ratio. `jobq-bench
/// headline` rewrites the README's block; `--check` only compares (the test suite runs it).
struct Headline {
    /// One row: which scenario block, which figure (its name's start), and — when a figure
    /// appears once per reference — a word of the reference that picks the row.
    struct Pick {
        var label: String
        var block: String
        var figure: String
        var reference: String? = nil
    }

    static let picks: [Pick] = [
        Pick(label: "drain rate, one worker process, concurrency 32, no-op jobs", block: "drain", figure: "drain rate, concurrency 32", reference: "BullMQ"),
        Pick(label: "the same, against Redis alone", block: "drain", figure: "drain rate, concurrency 32", reference: "redis-benchmark"),
        Pick(label: "Redis CPU per job drained, concurrency 32", block: "drain", figure: "Redis CPU per job, concurrency 32", reference: "BullMQ"),
        Pick(label: "Redis commands per job, take + finish", block: "drain", figure: "Redis commands per job inside the scripts"),
        Pick(label: "single add, p50 latency", block: "enqueue", figure: "single add, p50 latency"),
        Pick(label: "Redis CPU per add", block: "enqueue", figure: "Redis CPU per add, one at a time"),
        Pick(label: "addBulk of 100,000 jobs", block: "enqueue", figure: "addBulk of 100,000"),
        Pick(label: "single add, p50 latency, against Sidekiq", block: "enqueue", figure: "single add, p50 latency", reference: "Sidekiq"),
        Pick(label: "addBulk of 100,000 jobs, against Sidekiq", block: "enqueue", figure: "addBulk of 100,000", reference: "Sidekiq"),
        Pick(label: "cancel a running job: cancel() → the handler's token fires, p50", block: "cancel", figure: "cancel → token fired, p50"),
        Pick(label: "a `kill -9`'d worker's 100 jobs back in waiting (default 10 s lease)", block: "recovery", figure: "kill -9 of a worker"),
        Pick(label: "Redis memory per waiting job (20-byte payload)", block: "memory", figure: "Redis memory per waiting job"),
    ]

    struct Row: Equatable {
        var figure, measured, reference, referenceValue, ratio: String
    }

    enum Failure: Error, CustomStringConvertible {
        case missing(String)
        var description: String {
            switch self {
            case .missing(let what): what
            }
        }
    }

    /// The figure rows of one scenario block, with "same" references resolved to the row above.
    static func rows(block name: String, in benchmarks: String) throws(Failure) -> [Row] {
        guard let body = BenchmarksFile.block(name, in: benchmarks) else { throw .missing("BENCHMARKS.md has no \(name) block") }
        var rows: [Row] = []
        var inFigures = false
        for line in body.split(separator: "\n") {
            if line.hasPrefix("| figure | measured") {
                inFigures = true
                continue
            }
            guard inFigures, line.hasPrefix("| "), !line.hasPrefix("|---") else {
                inFigures = inFigures && line.hasPrefix("|")
                continue
            }
            let cells = line.split(separator: "|", omittingEmptySubsequences: false).dropFirst().map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count >= 5 else { continue }
            var reference = cells[2]
            if reference == "same", let previous = rows.last { reference = previous.reference }
            rows.append(Row(figure: cells[0], measured: cells[1], reference: reference, referenceValue: cells[3], ratio: cells[4]))
        }
        return rows
    }

    /// `7,103 (6,789–7,622) jobs/s` → `7,103 jobs/s`: the median, as BENCHMARKS.md prints it.
    static func median(_ cell: String) -> String {
        cell.replacing(/\ \([^)]*\)/, with: "")
    }

    static func table(from benchmarks: String) throws(Failure) -> String {
        var lines = [
            "| figure | jobq | measured against, in the same run on the same server | its figure | ratio |",
            "|---|---|---|---|---|",
        ]
        for pick in picks {
            let rows = try rows(block: pick.block, in: benchmarks)
            guard let row = rows.first(where: { row in row.figure.hasPrefix(pick.figure) && (pick.reference.map { row.reference.contains($0) } ?? true) })
            else {
                throw .missing("BENCHMARKS.md's \(pick.block) block has no row \"\(pick.figure)\"\(pick.reference.map { " against \($0)" } ?? "")")
            }
            let reference = row.reference == "—" ? "—" : row.reference
            lines.append("| \(pick.label) | \(median(row.measured)) | \(reference) | \(median(row.referenceValue)) | \(row.ratio) |")
        }
        let environment =
            BenchmarksFile.block("environment", in: benchmarks)?
            .split(separator: "\n").first { $0.hasPrefix("Machine:") }
            .map { String($0).trimmingCharacters(in: .whitespaces) } ?? ""
        lines.append("")
        lines.append(
            "Medians of 3 to 5 runs per figure from [`BENCHMARKS.md`](BENCHMARKS.md), which has the spreads, the latency percentiles, the targets (met and missed, with profiles) and the command behind each figure. \(environment) Written by `jobq-bench headline` from `BENCHMARKS.md`: never edited by hand."
        )
        return lines.joined(separator: "\n")
    }

    /// Rewrites (or with `check`, compares) the README's headline block. Returns whether the
    /// README already said what BENCHMARKS.md says.
    static func update(readme: String, benchmarks: String, check: Bool) throws -> Bool {
        let readmeText = try String(contentsOfFile: readme, encoding: .utf8)
        let benchmarksText = try String(contentsOfFile: benchmarks, encoding: .utf8)
        let table = try table(from: benchmarksText)
        guard let current = BenchmarksFile.block("headline", in: readmeText) else {
            throw Failure.missing("\(readme) has no <!-- jobq-bench:headline --> block")
        }
        if current.trimmingCharacters(in: .newlines) == table { return true }
        if !check {
            let updated = BenchmarksFile.replacing(block: "headline", in: readmeText, with: table, title: "Headline")
            try updated.write(toFile: readme, atomically: true, encoding: .utf8)
        }
        return false
    }
}
