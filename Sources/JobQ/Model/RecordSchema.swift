/// The stored shape of jobq's Redis values: every field of a job's record, of an event, of a
/// queue's settings and of a worker's heartbeat, with its type and default. This file and
/// `Lua/include/record.lua` are the only places the short field names are spelled;
/// `RecordSchemaTests` checks that the two tables agree, and `docs/data-model.md` lists every
/// field with its meaning.
///
/// Names are short on purpose: a record is a small Redis hash, and Redis keeps small hashes in
/// its compact encoding only while names and values stay short. Options at their default are not
/// stored at all.
package enum FieldType: String, Sendable {
    /// UTF-8 text.
    case text
    /// Raw bytes (payload, result, checkpoint): binary-safe.
    case bytes
    /// A decimal integer.
    case integer
    /// A decimal number (progress percent).
    case number
    /// Milliseconds since the Unix epoch, from the Redis clock (`TIME`).
    case timestamp
    /// `"1"` when set; absent otherwise.
    case flag
}

/// One field of a job's record (`jobq:{<q>}:job:<id>`, a HASH).
package enum JobField: String, CaseIterable, Sendable {
    // What was added.
    case name = "n"
    case payload = "d"
    case encoding = "e"
    case priority = "p"
    case attempts = "a"
    case backoff = "bo"
    case timeout = "to"
    case maxStalls = "ms"
    case removeOnComplete = "rc"
    case removeOnFail = "rf"
    // Where it is.
    case state = "s"
    case createdAt = "ct"
    case dueAt = "du"
    // Its runs.
    case attemptsMade = "am"
    case stallCount = "sc"
    case startedAt = "st"
    case finishedAt = "ft"
    case worker = "w"
    case execution = "x"
    case progressPercent = "pp"
    case progressMessage = "pm"
    case checkpoint = "cp"
    case result = "r"
    case errorReason = "er"
    case errorDetails = "ed"
    case previousReason = "pe"
    case previousDetails = "pd"
    // A cancel request.
    case cancelRequested = "cr"
    case cancelReason = "cx"
    case cancelRequestedBy = "cb"
    /// The job's group (`JobOptions.group`): it waits in its group's line (`docs/flow-control.md`).
    case group = "g"
    /// The schedule that made the job, and the tick's intended time (`docs/schedules.md`).
    case schedule = "sd"
    case tick = "tk"

    package var type: FieldType {
        switch self {
        case .name, .state, .worker, .execution, .progressMessage, .errorReason, .errorDetails,
            .previousReason, .previousDetails, .cancelReason, .cancelRequestedBy, .backoff, .encoding, .group, .schedule:
            .text
        case .payload, .checkpoint, .result: .bytes
        case .priority, .attempts, .timeout, .maxStalls, .attemptsMade, .stallCount: .integer
        case .progressPercent: .number
        case .createdAt, .dueAt, .startedAt, .finishedAt, .tick: .timestamp
        case .removeOnComplete, .removeOnFail, .cancelRequested: .flag
        }
    }

    /// The value an absent field stands for (nil: absent means "none").
    package var defaultValue: String? {
        switch self {
        case .priority: "0"
        case .attempts: "3"
        case .backoff: Backoff.default.encoded
        case .timeout: "300000"
        case .maxStalls: "1"
        case .attemptsMade, .stallCount: "0"
        case .removeOnComplete, .removeOnFail, .cancelRequested: "0"
        default: nil
        }
    }

    /// `encoding` of a binary payload; a JSON payload leaves the field out.
    package static let bytesEncoding = "b"
    /// The value of a set ``FieldType/flag`` field.
    package static let flagSet = "1"
}

/// One field of an event (an entry of `jobq:{<q>}:events`, a STREAM).
package enum EventField: String, CaseIterable, Sendable {
    /// The event's kind (`added`, `active`, `failed`…).
    case kind = "ev"
    /// The job's id ("" for queue-wide events).
    case job = "id"
    case name = "n"
    case attempt = "at"
    case worker = "w"
    case reason = "er"
    case details = "ed"
    case result = "r"
    case progressPercent = "pp"
    case progressMessage = "pm"
    case retryDelay = "dl"
    case stallCount = "sc"
    case cancelledBy = "by"
    case previousState = "from"
    case state = "state"
    case count = "count"
    /// The group a `limits` event changed.
    case group = "g"
    /// `scheduled` and `skipped`: the schedule, the tick (the first one skipped) and the last
    /// tick skipped.
    case schedule = "sd"
    case tick = "tk"
    case lastTick = "tl"

    package var type: FieldType {
        switch self {
        case .kind, .job, .name, .worker, .reason, .details, .progressMessage, .cancelledBy, .previousState, .state, .group, .schedule:
            .text
        case .result: .bytes
        case .attempt, .retryDelay, .stallCount, .count: .integer
        case .progressPercent: .number
        case .tick, .lastTick: .timestamp
        }
    }
}

/// One field of a schedule (`jobq:{<q>}:s:h:<id>`, a HASH; `docs/schedules.md`). The first
/// group is the spec as given (an upsert compares them: ``spec``); the rest is the scheduler's.
package enum ScheduleField: String, CaseIterable, Sendable {
    /// `cron` or `every`.
    case kind = "k"
    /// The cron expression, or the interval in ms.
    case expression = "x"
    /// The IANA time zone of a cron schedule (absent: UTC).
    case zone = "z"
    /// The first tick of an `every` schedule (ms; absent: the epoch, so ticks fall on multiples).
    case anchor = "an"
    /// The job: name, payload, its encoding, its options (JSON of record fields), its priority.
    case name = "n"
    case payload = "d"
    case encoding = "e"
    case options = "o"
    case priority = "p"
    /// Policies: misfire (`skip`, `fireOnce`, `catchUp:<n>`), overlap (`allow`,
    /// `skipIfRunning`, `cancelPrevious`), jitter and misfire grace (ms).
    case misfire = "mf"
    case overlap = "ov"
    case jitter = "jt"
    case grace = "gr"
    // The scheduler's.
    case version = "v"
    case paused = "ps"
    /// The next tick to make a job for (ms).
    case nextTick = "nx"
    /// The job of the latest tick made, and that tick; the one before it.
    case pendingJob = "pj"
    case pendingTick = "pt"
    case lastJob = "lj"
    case lastTick = "lt"
    case createdAt = "ct"
    case updatedAt = "ut"
    /// Jobs made, ticks skipped, and the latest skip's reason and time.
    case fired = "fc"
    case skipped = "sk"
    case skipReason = "sr"
    case skippedAt = "sa"

    /// The fields an upsert compares, in `record.lua`'s `SPEC` order.
    package static let spec: [ScheduleField] = [
        .kind, .expression, .zone, .anchor, .name, .payload, .encoding, .options, .priority, .misfire, .overlap, .jitter, .grace,
    ]

    package var type: FieldType {
        switch self {
        case .kind, .expression, .zone, .name, .encoding, .options, .misfire, .overlap, .pendingJob, .lastJob, .skipReason: .text
        case .payload: .bytes
        case .priority, .jitter, .grace, .version, .fired, .skipped: .integer
        case .anchor, .nextTick, .pendingTick, .lastTick, .createdAt, .updatedAt, .skippedAt: .timestamp
        case .paused: .flag
        }
    }
}

/// One field of a queue's settings (`jobq:{<q>}:meta`, a HASH).
package enum QueueMetaField: String, CaseIterable, Sendable {
    case paused = "paused"
    case keepCompleted = "kc"
    case keepFailed = "kf"
    case keepCancelled = "kx"
    // Flow limits (`docs/flow-control.md`).
    case concurrency = "cc"
    case rateCount = "rn"
    case rateWindow = "rw"
    case throttledUntil = "tu"
    case maxWaiting = "mw"
    // The groups' defaults; a group's own settings (`jobq:{<q>}:g:m:<group>`) use the
    // fields paused, cc, rn, rw and tu, with -1 in cc or rn for "no limit for this group".
    case groupConcurrency = "gc"
    case groupRateCount = "gn"
    case groupRateWindow = "gw"

    package var type: FieldType {
        switch self {
        case .paused: .flag
        case .throttledUntil: .timestamp
        default: .integer
        }
    }

    package var defaultValue: String? {
        switch self {
        case .paused: nil
        case .keepCompleted: "10"
        case .keepFailed: "5"
        case .keepCancelled: "10"
        case .concurrency, .rateCount, .rateWindow, .throttledUntil, .maxWaiting, .groupConcurrency, .groupRateCount, .groupRateWindow: nil
        }
    }
}

/// One field of a worker's heartbeat (`jobq:worker:<id>`, a HASH that expires after 3 beats).
package enum HeartbeatField: String, CaseIterable, Sendable {
    case host, pid, queues, concurrency, active, started, lastSeen
    /// `running`, `paused` (an operator's or the app's pause) or `stopping`.
    case state
    /// Requests from `controlWorker-1`, each `<seq>:<value>`, and their counter.
    case wantPaused, wantConcurrency, controlSeq

    package var type: FieldType {
        switch self {
        case .host, .queues, .state, .wantPaused, .wantConcurrency: .text
        case .pid, .concurrency, .active, .controlSeq: .integer
        case .started, .lastSeen: .timestamp
        }
    }
}
