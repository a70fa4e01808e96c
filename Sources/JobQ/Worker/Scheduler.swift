import Logging
import Metrics

/// Advances the schedules of this worker's queues (`docs/schedules.md`): claims the ones due,
/// makes their ticks' jobs (one script per schedule), and sleeps until the next is due — a
/// timer, or a nudge on the queue's channel when a schedule is upserted or resumed anywhere.
/// Every worker runs one; the scripts make each tick one job however many race. On a thread of
/// its own (`jobq-scheduler`), through the worker's upkeep client.
final class Scheduler: Sendable {
    private let cores: [QueueCore]
    private let logger: Logger
    private let trouble: TroubleLog
    private let cap: Duration
    private let pause = UpkeepPause()

    /// - Parameter cap: the longest sleep (a nudge lost to a reconnect costs at most this).
    init(cores: [QueueCore], cap: Duration, logger: Logger, trouble: TroubleLog) {
        self.cores = cores
        self.cap = cap
        self.logger = logger
        self.trouble = trouble
    }

    func run() async {
        await ThreadExecutor.withThread(named: "jobq-scheduler") {
            var next = ContinuousClock.now
            while pause.wait(until: next) {
                var sleep = cap
                for core in cores {
                    if pause.isStopping { return }
                    if let ms = await advance(core) { sleep = min(sleep, .milliseconds(ms)) }
                }
                next = .now + sleep
            }
        }
    }

    /// A schedule changed somewhere: advance now.
    func wake() { pause.wake() }

    func stop() { pause.stop() }

    /// One queue: up to 10 rounds of 100 schedules. Returns ms until the next is due.
    private func advance(_ core: QueueCore) async -> Int? {
        var next: Int?
        for _ in 0..<10 {
            let pass: SchedulePass
            do {
                pass = try await core.advanceSchedules { id in
                    self.logger.error(
                        "a schedule's hash holds fields jobq did not write; it is not advanced until it is upserted again or removed",
                        metadata: ["queue": "\(core.name)", "schedule": "\(id)"])
                }
                trouble.succeeded()
            } catch {
                if error.code == .redis, let redis = error.redisError {
                    trouble.failed("cannot reach Redis: \(redis)")
                } else {
                    trouble.failed("schedules of \(core.name): \(error)")
                }
                trouble.summarizeIfDue()
                return 1000
            }
            if pass.added > 0 { Counter(label: "jobq_schedule_jobs_total", dimensions: [("queue", core.name)]).increment(by: pass.added) }
            if pass.skipped > 0 { Counter(label: "jobq_schedule_skipped_total", dimensions: [("queue", core.name)]).increment(by: pass.skipped) }
            next = pass.nextDueMs
            guard pass.advanced > 0, pass.nextDueMs == 0 else { break }
        }
        return next
    }
}
