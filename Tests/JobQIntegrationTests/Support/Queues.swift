import Foundation
import LocalRedis

@testable import JobQ
@testable import JobQRedis

/// A queue with a name no other test uses, on the shared server.
func uniqueQueue(_ label: String = #function, settings: QueueSettings = QueueSettings(), client: RedisClient? = nil) async throws -> JobQueue {
    let c: RedisClient
    if let client { c = client } else { c = try await SharedRedis.client() }
    let name = "t-\(label.prefix(while: { $0 != "(" }))-\(UUID().uuidString.prefix(8))"
    return try JobQueue(name: name, client: c, settings: settings)
}

extension JobQueue {
    /// A lease for tests: a fresh token, a test worker id.
    static func testLease(_ length: Duration = .seconds(30)) -> QueueCore.Lease {
        QueueCore.Lease(token: JobID.generate(), workerID: "test-worker", length: length)
    }

    /// Takes one job or fails the test.
    func takeJob(_ lease: QueueCore.Lease = JobQueue.testLease()) async throws -> (Job, QueueCore.Lease)? {
        switch try await core.take(lease: lease) {
        case .job(let job, _): return (job, lease)
        case .empty, .paused, .limited: return nil
        }
    }

    /// Every key of this queue on the server (SCAN, bounded).
    func allKeys() async throws -> [String] {
        var cursor = "0"
        var keys: [String] = []
        for _ in 0..<100_000 {
            let reply = try await client.send(RedisCommand("SCAN", cursor, "MATCH", "jobq:{\(name)}:*", "COUNT", 1000))
            guard let items = reply.array, items.count == 2 else { break }
            cursor = items[0].string ?? "0"
            keys += (items[1].array ?? []).compactMap(\.string)
            if cursor == "0" { break }
        }
        return keys
    }

    /// Members of one of the queue's sorted sets in order; for the `wait` list, in run order.
    func members(_ key: String) async throws -> [String] {
        if key == keys.wait {
            return (try await client.send(RedisCommand("LRANGE", key, 0, -1)).array?.compactMap(\.string) ?? []).reversed()
        }
        return try await client.send(RedisCommand("ZRANGE", key, 0, -1)).array?.compactMap(\.string) ?? []
    }

    /// Event types in the stream for one job, oldest first.
    func eventKinds(for id: String) async throws -> [String] {
        let rows = try await client.send(RedisCommand("XRANGE", keys.events, "-", "+")).array ?? []
        var kinds: [String] = []
        for row in rows {
            guard let entry = row.array, entry.count == 2, let flat = entry[1].array,
                let event = QueueEvent(streamID: entry[0].string ?? "", flat: flat), event.jobID == id
            else { continue }
            kinds.append(event.kind.description)
        }
        return kinds
    }
}
