import Foundation
import JobQ

/// Printing for people (aligned tables, relative times) and for programs (`--json`: one object
/// or one array, keys sorted, the shapes documented in README "jobq-admin --json").
enum Output {
    /// Writes one JSON value (a dictionary or an array of them) to stdout.
    static func json(_ value: Any) {
        let data = (try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes])) ?? Data("null".utf8)
        StandardStreams.write(Array(data) + [10], to: 1)
    }

    static func line(_ text: String) {
        StandardStreams.out(safe(text, keepNewlines: true) + "\n")
    }

    /// Text made safe for a terminal: control characters (C0, DEL, C1) and invisible format
    /// characters (bidirectional overrides…) from names, ids, messages and results are shown as
    /// escapes (`\n`, `\t`, `\e`, `\u{202E}`), so a stored value can neither move the cursor,
    /// clear the screen, set the title, nor split a line. `--json` output is exact instead.
    static func safe(_ text: String, keepNewlines: Bool = false) -> String {
        guard text.unicodeScalars.contains(where: needsEscape) else { return text }
        var out = ""
        out.unicodeScalars.reserveCapacity(text.unicodeScalars.count)
        for scalar in text.unicodeScalars {
            if scalar == "\n" && keepNewlines {
                out.unicodeScalars.append(scalar)
                continue
            }
            guard needsEscape(scalar) else {
                out.unicodeScalars.append(scalar)
                continue
            }
            switch scalar {
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            case "\u{1B}": out += "\\e"
            default: out += "\\u{\(String(scalar.value, radix: 16, uppercase: true))}"
            }
        }
        return out
    }

    private static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) || scalar.properties.generalCategory == .format
            || scalar.properties.generalCategory == .lineSeparator || scalar.properties.generalCategory == .paragraphSeparator
    }

    /// A progress note on stderr, only when stderr is a terminal (long batched commands).
    static func note(_ text: String) {
        guard isatty(2) == 1 else { return }
        StandardStreams.err(("\r\u{1b}[K" + text))
    }

    static func endNote() {
        guard isatty(2) == 1 else { return }
        StandardStreams.err("\r\u{1b}[K")
    }

    /// Columns padded to their widest cell (in terminal columns: a CJK character or an emoji is
    /// two); numbers right-aligned. `shrinkable` columns are cut (with …) widest first until a
    /// row fits in `maxWidth`.
    static func table(_ header: [String], _ rows: [[String]], numeric: Set<Int> = [], maxWidth: Int? = nil, shrinkable: [Int] = []) -> String {
        var rows = rows.map { $0.map { safe($0) } }
        var widths = header.map(width)
        for row in rows {
            for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], width(cell)) }
        }
        if let maxWidth {
            var total = widths.reduce(0, +) + 2 * max(0, widths.count - 1)
            while total > maxWidth, let widest = shrinkable.filter({ widths[$0] > max(8, width(header[$0])) }).max(by: { widths[$0] < widths[$1] }) {
                widths[widest] -= 1
                total -= 1
            }
            rows = rows.map { row in row.enumerated().map { i, cell in i < widths.count && width(cell) > widths[i] ? clip(cell, widths[i]) : cell } }
        }
        func render(_ cells: [String]) -> String {
            var parts: [String] = []
            for (i, cell) in cells.enumerated() {
                let pad = String(repeating: " ", count: max(0, widths[i] - width(cell)))
                if i == cells.count - 1 && !numeric.contains(i) { parts.append(cell) } else { parts.append(numeric.contains(i) ? pad + cell : cell + pad) }
            }
            return parts.joined(separator: "  ")
        }
        return ([render(header)] + rows.map(render)).joined(separator: "\n")
    }

    /// "3 s ago", "in 2 min", "just now".
    static func relative(_ date: Date?, now: Date = Date()) -> String {
        guard let date else { return "—" }
        let seconds = date.timeIntervalSince(now)
        let text = span(abs(seconds))
        if abs(seconds) < 1 { return "just now" }
        return seconds < 0 ? "\(text) ago" : "in \(text)"
    }

    /// 850 ms, 12 s, 3 min, 5 h, 2 d.
    static func span(_ seconds: Double) -> String {
        if seconds < 1 { return "\(Int(seconds * 1000)) ms" }
        if seconds < 120 { return "\(Int(seconds)) s" }
        if seconds < 7200 { return "\(Int(seconds / 60)) min" }
        if seconds < 172_800 { return "\(Int(seconds / 3600)) h" }
        return "\(Int(seconds / 86_400)) d"
    }

    static func timestamp(_ date: Date?) -> Any {
        guard let date else { return NSNull() }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: date)
    }

    static func milliseconds(_ d: Duration) -> Int64 {
        d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000
    }

    /// Bytes as a JSON value when they are JSON text; nil otherwise (the caller uses base64).
    static func jsonValue(_ bytes: [UInt8]) -> Any? {
        guard !bytes.isEmpty else { return nil }
        return try? JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed])
    }

    /// Text for a terminal: printable UTF-8 shortened to `limit`, else a byte count.
    static func excerpt(_ bytes: [UInt8], limit: Int = 60) -> String {
        guard let text = String(validating: bytes, as: UTF8.self), !text.unicodeScalars.contains(where: { $0.value < 32 && $0 != "\n" && $0 != "\t" }) else {
            return "<\(bytes.count) bytes>"
        }
        return shorten(text.replacingOccurrences(of: "\n", with: " "), limit)
    }

    /// Columns `text` takes in a terminal: 2 for wide characters (CJK, Hangul, fullwidth forms,
    /// emoji), 0 for combining marks (part of the character before), 1 otherwise.
    static func width(_ text: String) -> Int {
        text.reduce(0) { $0 + width(of: $1) }
    }

    static func width(of character: Character) -> Int {
        guard let scalar = character.unicodeScalars.first else { return 0 }
        let v = scalar.value
        if scalar.properties.isEmojiPresentation || character.unicodeScalars.contains(where: { $0.value == 0xFE0F }) { return 2 }
        let wide: [ClosedRange<UInt32>] = [
            0x1100...0x115F, 0x2E80...0x303E, 0x3041...0x33FF, 0x3400...0x4DBF, 0x4E00...0x9FFF,
            0xA000...0xA4CF, 0xAC00...0xD7A3, 0xF900...0xFAFF, 0xFE30...0xFE4F, 0xFF00...0xFF60,
            0xFFE0...0xFFE6, 0x1F300...0x1F64F, 0x1F900...0x1F9FF, 0x20000...0x3FFFD,
        ]
        return wide.contains { $0.contains(v) } ? 2 : 1
    }

    /// The first `columns` terminal columns of `text`, ending in … when cut.
    static func clip(_ text: String, _ columns: Int) -> String {
        guard width(text) > columns else { return text }
        var out = ""
        var used = 0
        for c in text {
            let w = width(of: c)
            if used + w > columns - 1 { break }
            out.append(c)
            used += w
        }
        return out + "…"
    }

    /// The terminal's size when stdout is one (columns, rows); else nil.
    static func terminalSize() -> (columns: Int, rows: Int)? {
        guard isatty(1) == 1 else { return nil }
        var size = winsize()
        // TIOCGWINSZ (Linux): not imported as a constant.
        guard ioctl(1, UInt(0x5413), &size) == 0, size.ws_col > 0, size.ws_row > 0 else { return nil }
        return (Int(size.ws_col), Int(size.ws_row))
    }

    static func shorten(_ text: String, _ limit: Int) -> String {
        text.count > limit ? String(text.prefix(limit - 1)) + "…" : text
    }

    /// A progress bar: `[######....]  45%`.
    static func bar(_ percent: Double, width: Int = 20) -> String {
        let p = max(0, min(100, percent))
        let filled = Int((p / 100 * Double(width)).rounded())
        return "[" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "] " + String(format: "%3.0f%%", p)
    }
}

/// The `--json` shapes (stable; documented in the README).
enum JSONShape {
    static func counts(_ queue: String, _ c: JobCounts, workers: Int? = nil) -> [String: Any] {
        var object: [String: Any] = [
            "queue": queue, "waiting": c.waiting, "delayed": c.delayed, "active": c.active,
            "completed": c.completed, "failed": c.failed, "cancelled": c.cancelled, "paused": c.paused,
        ]
        if let workers { object["workers"] = workers }
        let l = c.limits
        object["limits"] =
            [
                "rate": l.rate.map { $0.description as Any } ?? NSNull(), "concurrency": l.concurrency.map { $0 as Any } ?? NSNull(),
                "maxWaiting": l.maxWaiting.map { $0 as Any } ?? NSNull(), "throttledUntil": Output.timestamp(l.throttledUntil),
                "startsInWindow": c.startsInWindow, "limitedBy": c.limitedBy.map { $0 as Any } ?? NSNull(), "waitingForLimit": c.waitingForLimit,
                "limitWaitMs": c.limitWaitMs.map { $0 as Any } ?? NSNull(),
                "groupRate": l.groupRate.map { $0.description as Any } ?? NSNull(),
                "groupConcurrency": l.groupConcurrency.map { $0 as Any } ?? NSNull(),
            ] as [String: Any]
        object["groups"] = ["known": c.groups, "ready": c.groupsReady, "held": c.groupsHeld] as [String: Any]
        return object
    }

    static func group(_ queue: String, _ g: GroupCounts) -> [String: Any] {
        [
            "queue": queue, "group": g.group, "waiting": g.waiting, "active": g.active, "paused": g.paused,
            "concurrency": g.concurrency.map { $0 as Any } ?? NSNull(), "rate": g.rate.map { $0.description as Any } ?? NSNull(),
            "ownLimits": g.hasOwnLimits, "throttledUntil": Output.timestamp(g.throttledUntil), "startsInWindow": g.startsInWindow,
            "status": g.status.rawValue, "heldForMs": g.heldForMs.map { $0 as Any } ?? NSNull(),
        ]
    }

    static func failure(_ f: Job.Failure?) -> Any {
        guard let f else { return NSNull() }
        return ["reason": f.reason, "details": f.details]
    }

    static func job(_ job: Job) -> [String: Any] {
        var object: [String: Any] = [
            "id": job.id, "queue": job.queue, "name": job.name, "state": job.state.rawValue,
            "payloadEncoding": job.payload.encoding.rawValue,
            "attemptsMade": job.attemptsMade, "stallCount": job.stallCount,
            "checkpointBytes": job.checkpoint?.count ?? 0,
            "error": failure(job.error), "previousError": failure(job.previousError),
            "createdAt": Output.timestamp(job.createdAt), "startedAt": Output.timestamp(job.startedAt),
            "finishedAt": Output.timestamp(job.finishedAt), "dueAt": Output.timestamp(job.dueAt),
            "workerId": job.workerID ?? NSNull(), "executionId": job.executionID ?? NSNull(),
            "cancelRequested": job.cancelRequested, "cancelReason": job.cancelReason ?? NSNull(),
            "cancelRequestedBy": job.cancelRequestedBy ?? NSNull(),
            "scheduleId": job.scheduleID ?? NSNull(), "scheduledFor": Output.timestamp(job.scheduledFor),
            "options": [
                "attempts": job.options.attempts, "backoff": job.options.backoff.description,
                "timeoutMs": Output.milliseconds(job.options.timeout), "priority": job.options.priority.value,
                "maxStalls": job.options.maxStalls, "removeOnComplete": job.options.removeOnComplete,
                "removeOnFail": job.options.removeOnFail, "group": job.options.group ?? NSNull(),
            ] as [String: Any],
        ]
        if job.payload.encoding == .json, let value = Output.jsonValue(job.payload.bytes) {
            object["payload"] = value
        } else {
            object["payloadBase64"] = Data(job.payload.bytes).base64EncodedString()
        }
        if let progress = job.progress {
            object["progress"] = ["percent": progress.percent, "message": progress.message]
        } else {
            object["progress"] = NSNull()
        }
        if let result = job.result {
            if let value = Output.jsonValue(result) { object["result"] = value } else { object["resultBase64"] = Data(result).base64EncodedString() }
        } else {
            object["result"] = NSNull()
        }
        return object
    }

    static func worker(_ w: WorkerInfo) -> [String: Any] {
        [
            "id": w.id, "host": w.host, "pid": w.pid, "queues": w.queues, "state": w.state, "concurrency": w.concurrency, "active": w.active,
            "startedAt": Output.timestamp(w.started), "lastSeenAt": Output.timestamp(w.lastSeen),
        ]
    }
}
