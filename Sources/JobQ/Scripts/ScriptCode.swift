/// The small negative codes jobq's Lua scripts return (listed in `Lua/include/codes.lua`), and
/// the one place they become errors.
enum ScriptCode: Int, Sendable, CaseIterable {
    case notFound = -1
    case leaseLost = -2
    case paused = -3
    case isActive = -4
    case notPaused = -5
    case hasActive = -6
    case wrongState = -7
    case okAlready = -8
    case tooLarge = -9
    case limited = -10
    case queueFull = -11

    /// The Lua constant name used in script headers.
    var luaName: String {
        switch self {
        case .notFound: "NOT_FOUND"
        case .leaseLost: "LEASE_LOST"
        case .paused: "PAUSED"
        case .isActive: "IS_ACTIVE"
        case .notPaused: "NOT_PAUSED"
        case .hasActive: "HAS_ACTIVE"
        case .wrongState: "WRONG_STATE"
        case .okAlready: "OK_ALREADY"
        case .tooLarge: "TOO_LARGE"
        case .limited: "LIMITED"
        case .queueFull: "QUEUE_FULL"
        }
    }

    /// The error this code means for `jobID` in `queue`.
    func error(queue: String, jobID: String?, state: String? = nil) -> JobQError {
        switch self {
        case .notFound: JobQError(.notFound, queue: queue, jobID: jobID, detail: "no such job")
        case .leaseLost:
            JobQError(.leaseLost, queue: queue, jobID: jobID, detail: "the job is no longer active with this run's lease token; nothing was changed")
        case .paused: JobQError(.paused, queue: queue, jobID: jobID, detail: "the queue is paused")
        case .isActive: JobQError(.isActive, queue: queue, jobID: jobID, detail: "the job is running")
        case .notPaused: JobQError(.notPaused, queue: queue, jobID: jobID, detail: "the queue is not paused")
        case .hasActive: JobQError(.hasActive, queue: queue, jobID: jobID, detail: "the queue has running jobs")
        case .wrongState: JobQError(.wrongState, queue: queue, jobID: jobID, detail: "the job is \(state ?? "in another state")")
        case .okAlready: JobQError(.internalError, queue: queue, jobID: jobID, detail: "OK_ALREADY where none was expected")
        case .tooLarge: JobQError(.tooLarge, queue: queue, jobID: jobID, detail: "a value is over its size limit")
        case .limited: JobQError(.internalError, queue: queue, jobID: jobID, detail: "LIMITED where none was expected")
        case .queueFull:
            JobQError(.queueFull, queue: queue, jobID: jobID, detail: "the queue holds its maximum of waiting and delayed jobs; nothing was written")
        }
    }
}
