/// Scripts that exist only to be measured against: `jobq-bench` runs them under `redis-benchmark`
/// to get the ceiling the real code paths are a ratio to (`docs/performance.md`). Not an API.
@_spi(Benchmarks)
public enum ReferenceScripts {
    /// One call that takes the next waiting job of `queue` and completes it: this build's
    /// `takeJob` and `finishJob` scripts, unchanged, each wrapped as a Lua function and called in
    /// turn. `redis-benchmark -c 1 -P 32` running it over pre-added jobs is the drain ceiling of
    /// The same Redis work per job as a worker's finish-and-take, with no client at all.
    ///
    /// The job's own key is derived from the job prefix (passed in KEYS like every derived key).
    /// Returns the script source and the complete argument list that follows `EVALSHA <sha>`.
    public static func takeAndFinish(queue: String, workerID: String = "reference") throws(JobQError) -> (source: String, arguments: [String]) {
        let scripts = try QueueScripts.get()
        let keys = try QueueKeys(queue: queue)
        let source = """
        local function takeJob(KEYS, ARGV)
        \(scripts.takeJob.source)
        end
        local function finishJob(KEYS, ARGV)
        \(scripts.finishJob.source)
        end
        -- KEYS: wait prioritized active delayed meta marker events seq jobPrefix completed failed cancelled
        -- ARGV: token leaseMs workerId maxLen promoteBatch
        local taken = takeJob({KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]},
          {ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]})
        if taken[1] ~= 1 then return taken[1] end
        local id = taken[2]
        local finished = finishJob({KEYS[9] .. id, KEYS[3], KEYS[1], KEYS[2], KEYS[4], KEYS[10], KEYS[11], KEYS[12],
          KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]},
          {id, ARGV[1], 'completed', '', '', '-1', ARGV[4], '0', '', ARGV[2], ARGV[3], '1024'})
        return finished[1]
        """
        let keyList = [keys.wait, keys.prioritized, keys.active, keys.delayed, keys.meta, keys.marker, keys.events,
                       keys.sequence, keys.jobPrefix, keys.completed, keys.failed, keys.cancelled]
        return (source, [String(keyList.count)] + keyList + ["reference-token", "10000", workerID, "10000", "100"])
    }

    /// The key of a job's record, for benchmarks that set a field by hand (a cancel flag stored
    /// with no message, as after a lost pub/sub message).
    public static func jobKey(queue: String, id: String) throws(JobQError) -> String {
        try QueueKeys(queue: queue).job(id)
    }
}
