import Logging
import Metrics

/// Recovers the jobs of crashed or frozen workers: every L/4, per queue, `recoverStalled` puts
/// jobs whose lease lapsed back to waiting (the attempt given back), or fails or cancels them as
/// their options say. The script takes a `SET … NX PX` lock, so one worker at a time reaps a
/// queue, and it runs under OOM like renewal. On a thread of its own (`jobq-reaper`), through the
/// worker's upkeep client.
final class Reaper: Sendable {
    private let cores: [QueueCore]
    private let lease: Duration
    private let workerID: String
    private let logger: Logger
    private let trouble: TroubleLog
    private let pause = UpkeepPause()

    init(cores: [QueueCore], lease: Duration, workerID: String, logger: Logger, trouble: TroubleLog) {
        self.cores = cores
        self.lease = lease
        self.workerID = workerID
        self.logger = logger
        self.trouble = trouble
    }

    /// Reaps until ``stop()``.
    func run() async {
        await ThreadExecutor.withThread(named: "jobq-reaper") {
            let every = lease / 4
            var next = ContinuousClock.now
            while pause.wait(until: next) {
                next = .now + every
                for core in cores {
                    if pause.isStopping { return }
                    await reap(core)
                }
            }
        }
    }

    func stop() { pause.stop() }

    private func reap(_ core: QueueCore) async {
        let lockMs = Int64(max(1, (lease / 4).milliseconds))
        // At most 10 rounds of 1,000 per pass: a huge backlog of lapsed leases does not keep this
        // thread from the next queue.
        for _ in 0..<10 {
            guard let v = await trouble.call(core, core.recoverStalledCall(batch: 1000, holder: workerID, lockMs: lockMs)), v.remaining >= 0 else { return }
            if v.requeued > 0 { Counter(label: "jobq_jobs_stalled_total", dimensions: [("queue", core.name)]).increment(by: v.requeued) }
            if v.requeued + v.failed + v.cancelled > 0 {
                logger.warning(
                    "recovered stalled jobs",
                    metadata: ["queue": "\(core.name)", "requeued": "\(v.requeued)", "failed": "\(v.failed)", "cancelled": "\(v.cancelled)"])
            }
            if v.remaining == 0 { return }
        }
    }
}
