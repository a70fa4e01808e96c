import Foundation
import JobQ

extension JobQueue {
    /// Waits, for at most `seconds`, until the queue's event stream holds `count` events of
    /// `kind` (of `job` only, when given), and returns them. The stream is read from its
    /// beginning — each test's queue is its own — so an event that happened before the call is
    /// found too: no race with the action that causes it, and no polling of the queue's state.
    @discardableResult
    func expectEvents(_ kind: QueueEvent.Kind, job: String? = nil, count: Int = 1, within seconds: Double = 20) async throws -> [QueueEvent] {
        let queue = self
        let what = "\(count) \(kind) event\(count == 1 ? "" : "s")\(job.map { " of job \($0)" } ?? "") on \(name)"
        return try await within(seconds, what) {
            var seen: [QueueEvent] = []
            for try await element in queue.events(from: .beginning) {
                switch element {
                case .event(let event) where event.kind == kind && (job == nil || event.jobID == job):
                    seen.append(event)
                    if seen.count >= count { return seen }
                case .gap(let missed):
                    throw TimedOut(what: "\(what): \(missed) events fell off the capped stream before they were read")
                default:
                    continue
                }
            }
            throw TimedOut(what: "\(what): the event stream ended")
        }
    }
}
