/// One call of one script, whole: the script, the KEYS and ARGV it is sent with, and how its
/// reply decodes. Every script has exactly one builder of these (`QueueCore+ScriptCalls.swift`,
/// `ScriptCall.registerWorker`/`recordHeartbeat` for the worker-wide two); every caller — the
/// producer, the worker, the inspector, the lease service's own thread, the benchmark's reference
/// — sends what a builder made, and `ScriptContractTests` checks the builders' KEYS and ARGV
/// against each script's header.
struct ScriptCall<Reply>: Sendable {
    let script: RedisScript
    let keys: [String]
    let arguments: [any RedisArgument]
    /// The job the call is about, for errors.
    let jobID: String?
    /// Safe to resend when a connection dies with the call on the wire. Every builder says which:
    /// a take is not (resent, it would take a second job while the first, whose reply was
    /// lost, waits for the reaper and costs a stall).
    let idempotent: Bool
    /// The reply (already checked for an error reply) as a value, or why it makes no sense.
    let decode: @Sendable (RedisReply) throws(JobQError) -> Reply

    init(
        _ script: RedisScript, keys: [String], arguments: [any RedisArgument], jobID: String? = nil, idempotent: Bool = true,
        decode: @escaping @Sendable (RedisReply) throws(JobQError) -> Reply
    ) {
        self.script = script
        self.keys = keys
        self.arguments = arguments
        self.jobID = jobID
        self.idempotent = idempotent
        self.decode = decode
    }
}

/// Positive results of the scripts (the negative ones are ``ScriptCode``), each named where
/// the script's header names it.
enum ScriptStatus {
    /// A job was taken, a run ended, a record changed (the first item of most replies).
    static let applied = 1
    /// Nothing to take; nothing changed.
    static let nothing = 0
    /// `cancelJobs-9`, per id.
    static let cancelled = 1
    static let cancelRequested = 2
    static let alreadyFinished = 3
    /// `addJobs-9` per job, `advanceSchedules-13` per step: its write failed and was undone;
    /// Redis's error message follows.
    static let writeFailed = 2
}

extension QueueCore {
    /// Sends one call and decodes its reply; a Redis failure or error reply becomes a
    /// ``JobQError``.
    func call<Reply>(_ call: ScriptCall<Reply>) async throws(JobQError) -> Reply {
        let reply = try await run(call.script, keys: call.keys, arguments: call.arguments, jobID: call.jobID, idempotent: call.idempotent)
        return try call.decode(reply)
    }
}

extension RedisBatch {
    /// Adds a script call to a pipelined batch (its reply is decoded by the caller with
    /// `call.decode` once checked).
    mutating func append<Reply>(_ call: ScriptCall<Reply>) {
        append(call.script, keys: call.keys, arguments: call.arguments)
    }
}
