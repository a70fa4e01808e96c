/// Scripts that exist only to be measured against: `jobq-bench` runs them under `redis-benchmark`
/// to get the ceiling the real code paths are a ratio to (`docs/performance.md`). Not an API.
@_spi(Benchmarks)
public enum ReferenceScripts {
    /// One call that takes the next waiting job of `queue` and completes it: this build's
    /// `takeJob` and `finishJob` scripts, unchanged, each wrapped as a Lua function and called in
    /// turn with the KEYS and ARGV their real call builders make (the finish built for a
    /// placeholder id, which the wrapper replaces with the id the take returned). `redis-benchmark
    /// -c 1 -P 32` running it over pre-added jobs is the drain ceiling: the same Redis work per job
    /// as a worker's finish-and-take, with no client at all.
    ///
    /// Returns the script source and the complete argument list that follows `EVALSHA <sha>`.
    public static func takeAndFinish(queue: String, client: RedisClient, workerID: String = "reference") throws(JobQError) -> (
        source: String, arguments: [String]
    ) {
        let core = try QueueCore(name: queue, client: client, settings: QueueSettings())
        let lease = QueueCore.Lease(token: "reference-token", workerID: workerID, length: .seconds(10))
        let take = core.takeJobCall(lease: lease)
        let finish = core.finishJobCall(placeholder, token: lease.token, outcome: "completed", value: [], reason: "", retryDelayMs: -1, next: nil)
        // A script's flags line must open the whole script: it moves from the two bodies to the
        // wrapper.
        func body(_ source: String) -> String {
            source.hasPrefix("#!") ? String(source.drop { $0 != "\n" }.dropFirst()) : source
        }
        let flags = take.script.source.hasPrefix("#!") ? String(take.script.source.prefix { $0 != "\n" }) + "\n" : ""
        let source =
            flags + """
                local function takeJob(KEYS, ARGV)
                \(body(take.script.source))
                end
                local function finishJob(KEYS, ARGV)
                \(body(finish.script.source))
                end
                -- KEYS: the take's, then the finish's. ARGV: how many KEYS and ARGV the take has, its ARGV,
                -- then the finish's, in which the placeholder id stands for the job taken.
                local placeholder = '\(placeholder)'
                local nKeys, nArgs = tonumber(ARGV[1]), tonumber(ARGV[2])
                local takeKeys, takeArgs, finishKeys, finishArgs = {}, {}, {}, {}
                for i = 1, #KEYS do
                  if i <= nKeys then takeKeys[#takeKeys + 1] = KEYS[i] else finishKeys[#finishKeys + 1] = KEYS[i] end
                end
                for i = 3, #ARGV do
                  if i <= 2 + nArgs then takeArgs[#takeArgs + 1] = ARGV[i] else finishArgs[#finishArgs + 1] = ARGV[i] end
                end
                local taken = takeJob(takeKeys, takeArgs)
                if taken[1] ~= 1 then return taken[1] end
                local id = taken[2]
                for i = 1, #finishKeys do
                  local k = finishKeys[i]
                  if string.sub(k, -#placeholder) == placeholder then finishKeys[i] = string.sub(k, 1, #k - #placeholder) .. id end
                end
                for i = 1, #finishArgs do
                  if finishArgs[i] == placeholder then finishArgs[i] = id end
                end
                local finished = finishJob(finishKeys, finishArgs)
                return finished[1]
                """
        func text(_ argument: any RedisArgument) -> String {
            var bytes: [UInt8] = []
            argument.appendRedisArgument(to: &bytes)
            return String(decoding: bytes, as: UTF8.self)
        }
        let keys = take.keys + finish.keys
        let arguments = [String(take.keys.count), String(take.arguments.count)] + take.arguments.map(text) + finish.arguments.map(text)
        return (source, [String(keys.count)] + keys + arguments)
    }

    /// Stands for the taken job's id in the finish call the reference is built from.
    static let placeholder = "__jobq_reference_job__"

    /// The key of a job's record, for benchmarks that set a field by hand (a cancel flag stored
    /// with no message, as after a lost pub/sub message).
    public static func jobKey(queue: String, id: String) throws(JobQError) -> String {
        try QueueKeys(queue: queue).job(id)
    }
}
