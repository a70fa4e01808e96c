import Logging

/// Hears cancel requests for running jobs and fires their tokens (`docs/job-lifecycle.md`).
/// Cancel messages are published from scripts: `PUBLISH` on one server (one subscription for
/// every queue); `SPUBLISH` in a cluster, heard only on the node owning the queue's slot, so one
/// sharded subscriber per queue, each following its slot.
///
/// A token fires on the subscriber's thread as the message is read (no hop to the cooperative
/// pool); what a handler hangs on it with `onCancel` runs elsewhere (`JobContext.onCancel`), so a
/// slow closure delays no other cancel. After a resubscribe (messages may have been missed) the
/// lease service renews at once, which reports every cancel flag set on this worker's jobs.
final class CancelListener: Sendable {
    private let cores: [QueueCore]
    private let client: RedisClient
    private let registry: RunRegistry
    private let logger: Logger
    private let onResubscribed: @Sendable () -> Void
    private let workerID: String
    private let onNudge: @Sendable () -> Void
    private let onSchedulesChanged: @Sendable () -> Void

    /// - Parameters:
    ///   - onNudge: an operator's request for this worker waits (the control channel; not heard
    ///     in a cluster, where the next heartbeat reads it).
    ///   - onSchedulesChanged: a schedule of one of the queues was upserted or resumed (an empty
    ///     message on the queue's channel, which no job id can be).
    init(
        cores: [QueueCore], client: RedisClient, registry: RunRegistry, logger: Logger, workerID: String,
        onResubscribed: @escaping @Sendable () -> Void, onNudge: @escaping @Sendable () -> Void,
        onSchedulesChanged: @escaping @Sendable () -> Void = {}
    ) {
        self.cores = cores
        self.client = client
        self.registry = registry
        self.logger = logger
        self.workerID = workerID
        self.onResubscribed = onResubscribed
        self.onNudge = onNudge
        self.onSchedulesChanged = onSchedulesChanged
    }

    /// Subscribes (returns once the server confirmed, or after a warning when it cannot yet: the
    /// subscribers keep trying, and renewals report cancel requests meanwhile), runs `body`, then
    /// closes the subscribers and joins their threads.
    func withSubscriptions(_ body: () async -> Void) async {
        let subscribers = makeSubscribers()
        await withTaskGroup(of: Void.self) { group in
            for (subscriber, channels) in subscribers {
                group.addTask {
                    do {
                        try await subscriber.subscribe(channels)
                    } catch {
                        self.logger.warning("cannot subscribe to cancel requests yet (lease renewals still report them): \(error)")
                    }
                }
            }
        }
        await body()
        for (subscriber, _) in subscribers { await subscriber.close() }
    }

    private func makeSubscribers() -> [(RedisSubscriber, [String])] {
        let listener = onEvent
        if let router = client.cluster {
            return cores.map { core in
                let slot = RedisClusterSlot.of(core.keys.cancelChannel)
                let subscriber = RedisSubscriber(
                    shardedOn: client.configuration, locate: { router.known(slot) }, onTrouble: { router.refreshSoon() }, onEvent: listener)
                return (subscriber, [core.keys.cancelChannel])
            }
        }
        return [(RedisSubscriber(configuration: client.configuration, onEvent: listener), cores.map(\.keys.cancelChannel) + [QueueKeys.controlChannel])]
    }

    private var onEvent: @Sendable (RedisSubscriber.Event) -> Void {
        let channels = Dictionary(uniqueKeysWithValues: cores.enumerated().map { ($1.keys.cancelChannel, $0) })
        let (cores, registry, logger, onResubscribed) = (self.cores, self.registry, self.logger, self.onResubscribed)
        let (workerID, onNudge, onSchedulesChanged) = (Array(self.workerID.utf8), self.onNudge, self.onSchedulesChanged)
        return { event in
            switch event {
            case .message(let channel, let payload):
                if channel == QueueKeys.controlChannel {
                    if payload == workerID { onNudge() }
                    return
                }
                guard let q = channels[channel] else { return }
                if payload.isEmpty {
                    onSchedulesChanged()
                    return
                }
                let id = String(decoding: payload, as: UTF8.self)
                for run in registry.runs(queueIndex: q, id: id) where run.cancellation.fire(.cancelled) {
                    logger.info("cancel requested: stopping the job", metadata: ["queue": "\(cores[q].name)", "job": "\(id)", "execution": "\(run.token)"])
                }
            case .resubscribed:
                onResubscribed()
            }
        }
    }
}
