import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import JobQWorkerKit
import Logging
import Synchronization
import Testing

@testable import JobQ
@testable import JobQRedis

/// A local HTTP endpoint for `http` handlers (loopback, a free port), stopped with the test.
func withTestServer<T: Sendable>(_ configure: (Router<BasicRequestContext>) -> Void, _ body: (Int) async throws -> T) async throws -> T {
    let router = Router()
    configure(router)
    let bound = Latch()
    let port = Mutex(0)
    var logger = Logger(label: "test-http")
    logger.logLevel = .warning
    let app = Application(
        router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
        onServerRunning: { channel in
            port.withLock { $0 = channel.localAddress?.port ?? 0 }
            bound.open()
        }, logger: logger)
    let running = Task { try await app.runService(gracefulShutdownSignals: []) }
    await bound.wait()
    defer { running.cancel() }
    return try await body(port.withLock { $0 })
}

@Suite("Worker runtime: http handlers", .awaitedTeardown)
struct HTTPHandlerTests {
    @Test("2xx completes with the body as result; 4xx fails for good; 408 retries; 429 waits Retry-After; 5xx and timeouts retry")
    func outcomes() async throws {
        let busyCalls = Mutex(0)
        let timeoutCalls = Mutex(0)
        let busyTimes = Mutex<[ContinuousClock.Instant]>([])
        try await withTestServer({ router in
            router.post("ok") { request, _ -> String in
                let body = try await request.body.collect(upTo: 1 << 20)
                let id = request.headers[HTTPField.Name("Jobq-Job-Id")!] ?? "?"
                let attempt = request.headers[HTTPField.Name("Jobq-Attempt")!] ?? "?"
                let type = request.headers[.contentType] ?? "?"
                return "done \(id) \(attempt) \(type) \(String(buffer: body))"
            }
            router.post("bad") { _, _ -> Response in Response(status: .badRequest, body: .init(byteBuffer: ByteBuffer(string: "no such user"))) }
            router.post("busy") { _, _ -> Response in
                busyTimes.withLock { $0.append(.now) }
                if busyCalls.withLock({ c -> Bool in
                    c += 1
                    return c == 1
                }) {
                    var headers = HTTPFields()
                    headers[.retryAfter] = "1"
                    return Response(status: .tooManyRequests, headers: headers)
                }
                return Response(status: .ok)
            }
            router.post("requestTimeout") { _, _ -> Response in
                timeoutCalls.withLock {
                    $0 += 1
                    return $0
                } == 1 ? Response(status: .requestTimeout) : Response(status: .ok)
            }
            router.post("down") { _, _ -> Response in Response(status: .serviceUnavailable) }
            router.post("slow") { _, _ -> Response in
                try await Task.sleep(for: .seconds(5))
                return Response(status: .ok)
            }
        }) { port in
            let client = HTTPClient(eventLoopGroupProvider: .singleton)
            onTeardown { try? await client.shutdown() }
            func handler(_ path: String) -> JobHandlers.Handler {
                HTTPHandler(url: URL(string: "http://127.0.0.1:\(port)/\(path)")!, client: client, requestTimeout: .milliseconds(500)).handler
            }
            let queue = try await uniqueQueue()
            var handlers = JobHandlers()
            for path in ["ok", "bad", "busy", "requestTimeout", "down", "slow"] { handlers.register(name: path, handler(path)) }
            let quick = JobOptions(attempts: 3, backoff: .fixed(.milliseconds(10)))
            let ok = try await queue.add(name: "ok", payload: .json(#"{"x":1}"#), options: quick)
            let bad = try await queue.add(name: "bad", payload: .json("{}"), options: quick)
            let busy = try await queue.add(name: "busy", payload: .json("{}"), options: quick)
            let requestTimeout = try await queue.add(name: "requestTimeout", payload: .json("{}"), options: quick)
            let down = try await queue.add(name: "down", payload: .json("{}"), options: JobOptions(attempts: 2, backoff: .fixed(.milliseconds(10))))
            let slow = try await queue.add(name: "slow", payload: .json("{}"), options: JobOptions(attempts: 1))
            try await withWorker(queue, concurrency: 6, handlers: handlers) { _ in
                try await eventually(30, "all six ended") {
                    let c = try await queue.inspector.counts()
                    return c.completed == 3 && c.failed == 3
                }
            }
            #expect(try await queue.inspector.job(ok.id)?.resultText == #"done \#(ok.id) 1 application/json {"x":1}"#)
            let b = try #require(try await queue.inspector.job(bad.id))
            #expect(b.state == .failed && b.attemptsMade == 1 && b.error?.reason == "http400" && b.error?.details.contains("no such user") == true)
            let u = try #require(try await queue.inspector.job(busy.id))
            #expect(u.state == .completed && u.attemptsMade == 2)
            let times = busyTimes.withLock { $0 }
            #expect(times.count == 2 && times[1] - times[0] >= .milliseconds(950), "Retry-After: 1 was honoured")
            let r = try #require(try await queue.inspector.job(requestTimeout.id))
            #expect(r.state == .completed && r.attemptsMade == 2 && r.error?.reason == "http408", "408 is retried; the failed attempt stays on record")
            let d = try #require(try await queue.inspector.job(down.id))
            #expect(d.state == .failed && d.attemptsMade == 2 && d.error?.reason == "http503" && d.previousError?.reason == "http503")
            let s = try #require(try await queue.inspector.job(slow.id))
            #expect(s.state == .failed && s.error?.reason == "httpTimeout")
        }
    }

    @Test("throttleQueueOn429: a 429 with Retry-After throttles the whole queue: no request for 1 s, no attempt used, then every job completes")
    func throttleOn429() async throws {
        let calls = Mutex<[ContinuousClock.Instant]>([])
        try await withTestServer({ router in
            router.post("api") { _, _ -> Response in
                let n = calls.withLock { c -> Int in
                    c.append(.now)
                    return c.count
                }
                if n == 1 {
                    var headers = HTTPFields()
                    headers[.retryAfter] = "1"
                    return Response(status: .tooManyRequests, headers: headers)
                }
                return Response(status: .ok)
            }
        }) { port in
            let client = HTTPClient(eventLoopGroupProvider: .singleton)
            onTeardown { try? await client.shutdown() }
            var http = HTTPHandler(url: URL(string: "http://127.0.0.1:\(port)/api")!, client: client)
            http.throttleQueueOn429 = true
            var handlers = JobHandlers()
            handlers.register(name: "api", http.handler)
            let queue = try await uniqueQueue()
            try await queue.inspector.setRetention(completed: 100)
            let ids = try await queue.addBulk((0..<4).map { _ in JobQueue.NewJob(name: "api", payload: .json("{}"), options: .init(attempts: 1)) })
                .map { try $0.get().id }
            try await withWorker(queue, concurrency: 1, handlers: handlers) { _ in
                try await queue.expectEvents(.completed, count: 4, within: 30)
            }
            let times = calls.withLock { $0 }
            #expect(times.count == 5, "the throttled request is made again, once")
            #expect(times.count >= 2 && times[1] - times[0] >= .milliseconds(950), "no request to the endpoint inside the throttle")
            for id in ids {
                let job = try #require(try await queue.inspector.job(id))
                #expect(job.state == .completed && job.attemptsMade == 1, "attempts 1, yet completed: the throttle used none")
            }
        }
    }

    @Test("a 429 with Jobq-Throttle-Scope: group throttles only the job's group: the other group's requests go on meanwhile")
    func throttleGroupOn429() async throws {
        let calls = Mutex<[(id: String, at: ContinuousClock.Instant)]>([])
        try await withTestServer({ router in
            router.post("api") { request, _ -> Response in
                let id = request.headers[HTTPField.Name("Jobq-Job-Id")!] ?? ""
                let first = calls.withLock { c -> Bool in
                    c.append((id, .now))
                    return c.filter { $0.id == id }.count == 1
                }
                if id == "a0", first {
                    var headers = HTTPFields()
                    headers[.retryAfter] = "1"
                    headers[HTTPField.Name("Jobq-Throttle-Scope")!] = "group"
                    return Response(status: .tooManyRequests, headers: headers)
                }
                return Response(status: .ok)
            }
        }) { port in
            let client = HTTPClient(eventLoopGroupProvider: .singleton)
            onTeardown { try? await client.shutdown() }
            var http = HTTPHandler(url: URL(string: "http://127.0.0.1:\(port)/api")!, client: client)
            http.throttleQueueOn429 = true
            var handlers = JobHandlers()
            handlers.register(name: "api", http.handler)
            let queue = try await uniqueQueue()
            try await queue.inspector.setRetention(completed: 100)
            _ = try await queue.add(name: "api", payload: .json("{}"), options: .init(jobID: "a0", attempts: 1, group: "A"))
            for i in 0..<2 { _ = try await queue.add(name: "api", payload: .json("{}"), options: .init(jobID: "b\(i)", attempts: 1, group: "B")) }
            try await withWorker(queue, concurrency: 1, handlers: handlers) { _ in
                try await queue.expectEvents(.completed, count: 3, within: 30)
            }
            let seen = calls.withLock { $0 }
            #expect(seen.map(\.id) == ["a0", "b0", "b1", "a0"], "B is served while A waits out its throttle: \(seen.map(\.id))")
            if seen.count == 4 { #expect(seen[3].at - seen[0].at >= .milliseconds(950), "no request of A inside its throttle") }
            #expect(try await queue.inspector.job("a0")?.attemptsMade == 1)
        }
    }
}
