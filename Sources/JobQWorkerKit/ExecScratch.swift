import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The directory where `exec` handlers keep their per-run files (the checkpoint file):
/// `$TMPDIR/jobq-exec.<pid>`, mode 0700, owned by this process's user.
///
/// - A run removes its own file when it ends; a stopping worker removes the directory when no
///   program of this process still runs.
/// - A worker killed with SIGKILL cannot clean up: the first run in any later process on the
///   machine removes the directories of processes that no longer exist (and checkpoint files
///   older than a day left by earlier versions, which kept them loose in `$TMPDIR`), so they
///   never pile up.
enum ExecScratch {
    private static let state = Mutex<(path: String?, swept: Bool)>((nil, false))

    /// The directory, made (and, the first time in this process, the stale ones swept) if needed.
    static func directory() -> String {
        state.withLock { s in
            if !s.swept {
                s.swept = true
                sweep()
            }
            if let path = s.path, isOurs(path) { return path }
            let tmp = FileManager.default.temporaryDirectory.path
            var path = tmp + "/jobq-exec.\(getpid())"
            if mkdir(path, 0o700) != 0 && errno != EEXIST || !isOurs(path) {
                // Someone else holds the name: take a fresh private one.
                var template = Array((tmp + "/jobq-exec.\(getpid()).XXXXXX").utf8CString)
                path = template.withUnsafeMutableBufferPointer { buffer in
                    mkdtemp(buffer.baseAddress!).map { String(cString: $0) } ?? tmp
                }
            }
            s.path = path
            return path
        }
    }

    /// Removes this process's directory if it is empty (other runs may still use it).
    static func removeIfEmpty() {
        state.withLock { s in
            guard let path = s.path else { return }
            if rmdir(path) == 0 { s.path = nil }
        }
    }

    /// A directory owned by us, not a link, closed to others.
    private static func isOurs(_ path: String) -> Bool {
        owned(path, type: .typeDirectory).map { $0.permissions & 0o077 == 0 } ?? false
    }

    /// A file's permissions and modification time, when it is of `type` (not followed through a
    /// link: the attributes are lstat's) and owned by this process's user.
    private static func owned(_ path: String, type: FileAttributeType) -> (permissions: Int, modified: Date)? {
        guard let a = try? FileManager.default.attributesOfItem(atPath: path), a[.type] as? FileAttributeType == type,
            (a[.ownerAccountID] as? NSNumber)?.uint32Value == geteuid()
        else { return nil }
        return ((a[.posixPermissions] as? NSNumber)?.intValue ?? 0o777, a[.modificationDate] as? Date ?? .distantFuture)
    }

    private static func sweep() {
        let tmp = FileManager.default.temporaryDirectory.path
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: tmp) else { return }
        let dayAgo = Date().addingTimeInterval(-86_400)
        for name in names {
            let path = tmp + "/" + name
            if name.hasPrefix("jobq-exec.") {
                let digits = name.dropFirst("jobq-exec.".count).prefix { $0.isNumber }
                guard let pid = pid_t(digits), pid != getpid(), isOurs(path) else { continue }
                if kill(pid, 0) != 0 && errno == ESRCH {
                    try? FileManager.default.removeItem(atPath: path)
                }
            } else if name.hasPrefix("jobq-checkpoint-") {
                guard let file = owned(path, type: .typeRegular) else { continue }
                if file.modified < dayAgo { unlink(path) }
            }
        }
    }
}
