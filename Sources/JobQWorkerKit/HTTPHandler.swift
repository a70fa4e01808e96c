public import AsyncHTTPClient
public import Foundation
public import JobQ
import NIOCore
import NIOHTTP1

/// A handler that POSTs each job to an HTTP endpoint (`docs/handlers.md`).
///
/// - Body: the payload; `Content-Type: application/json` or `application/octet-stream` from its
///   encoding; headers `Jobq-Job-Id`, `Jobq-Job-Name`, `Jobq-Attempt`, `Jobq-Execution-Id`.
/// - 2xx: completed; a body up to the result limit becomes the result.
/// - 408, 429 (its `Retry-After` honoured as the retry delay), 5xx, connection errors and
///   timeouts: a failed attempt, retried while attempts remain. With ``throttleQueueOn429``, a
///   429 with a `Retry-After` throws ``RateLimited`` instead: the job goes back first in line
///   with no attempt used, and the whole queue waits that long (`docs/flow-control.md`); only
///   the job's group when the response also carries `Jobq-Throttle-Scope: group`.
/// - Any other 4xx: failed, not retried (the request itself is wrong).
/// - Cancel, timeout, shutdown: the request is cancelled.
public struct HTTPHandler: Sendable {
    public var url: URL
    /// The URL as errors and logs show it: a `user:password@` part is hidden.
    var shownURL: String { URLRedaction.redact(url.absoluteString) }
    public var requestTimeout: Duration
    public var maxResultBytes: Int
    /// A 429 with `Retry-After` throttles the queue (``RateLimited``) rather than retrying the
    /// one job: for an endpoint whose limit holds for every job.
    public var throttleQueueOn429 = false
    private let client: HTTPClient

    /// - Parameter client: shared by all handlers of a worker (its connection pool).
    public init(url: URL, client: HTTPClient, requestTimeout: Duration = .seconds(30), maxResultBytes: Int = 1 << 20) {
        self.url = url
        self.client = client
        self.requestTimeout = requestTimeout
        self.maxResultBytes = maxResultBytes
    }

    /// A retryable failure: its reason is `http<status>`, `httpTimeout` or `httpUnreachable`; a
    /// `Retry-After` (429, 503) becomes the delay of the retry.
    public struct RetryLater: RetryDelayProviding, FailureReasonProviding, CustomStringConvertible {
        public let description: String
        public let retryAfter: Duration?
        public let failureReason: String
    }

    public var handler: JobHandlers.Handler {
        let spec = self
        return { job, context in try await spec.run(job, context) }
    }

    func run(_ job: Job, _ context: JobContext) async throws -> [UInt8] {
        var request = HTTPClientRequest(url: url.absoluteString)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: job.payload.encoding == .json ? "application/json" : "application/octet-stream")
        request.headers.add(name: "Jobq-Job-Id", value: job.id)
        request.headers.add(name: "Jobq-Job-Name", value: job.name)
        request.headers.add(name: "Jobq-Attempt", value: String(job.attemptsMade))
        request.headers.add(name: "Jobq-Execution-Id", value: context.executionID)
        request.body = .bytes(ByteBuffer(bytes: job.payload.bytes))
        let timeout = TimeAmount.milliseconds(Int64(requestTimeout.components.seconds * 1000 + requestTimeout.components.attoseconds / 1_000_000_000_000_000))
        let response: HTTPClientResponse
        do {
            response = try await client.execute(request, timeout: timeout)
        } catch {
            if let reason = context.cancellationReason { throw JobCancelledError(reason: reason) }
            let timedOut = [HTTPClientError.deadlineExceeded, .readTimeout, .connectTimeout, .writeTimeout].contains { $0 == error as? HTTPClientError }
            throw RetryLater(
                description: "POST \(shownURL) failed: \(error)", retryAfter: nil,
                failureReason: timedOut ? "httpTimeout" : "httpUnreachable")
        }
        let status = response.status.code
        var body = ByteBuffer()
        do {
            body = try await response.body.collect(upTo: maxResultBytes)
        } catch {
            if (200..<300).contains(status) {
                throw UnrecoverableError(
                    "POST \(shownURL) answered \(status) with a body over the result limit of \(maxResultBytes) bytes", reason: "resultTooLarge")
            }
        }
        let bytes = Array(body.readableBytesView)
        let text = String(decoding: bytes.prefix(2048), as: UTF8.self)
        switch status {
        case 200..<300:
            return bytes
        case 408, 429, 500..<600:
            let retryAfter = response.headers.first(name: "Retry-After").flatMap { Self.retryAfter($0) }
            if status == 429, throttleQueueOn429, let retryAfter, retryAfter > .zero {
                let scope = response.headers.first(name: "Jobq-Throttle-Scope")?.lowercased() == "group" ? RateLimited.Scope.group : .queue
                throw RateLimited(retryAfter: retryAfter, scope: scope)
            }
            throw RetryLater(
                description: "POST \(shownURL) answered \(status): \(text)", retryAfter: retryAfter,
                failureReason: "http\(status)")
        default:
            throw UnrecoverableError("POST \(shownURL) answered \(status): \(text)", reason: "http\(status)")
        }
    }
}

extension HTTPHandler {
    /// A `Retry-After` value as a delay: delta-seconds (`120`) or an HTTP-date
    /// (`Wed, 21 Oct 2026 07:28:00 GMT`), at most a day. Nil for anything else — a negative or
    /// malformed value, a date in the past — so the job's own backoff applies instead.
    static func retryAfter(_ text: String) -> Duration? {
        let t = text.trimmingCharacters(in: .whitespaces)
        if !t.isEmpty, t.allSatisfy({ $0.isASCII && $0.isNumber }) {
            guard let seconds = Int(t.prefix(9)) else { return nil }
            return .seconds(min(seconds, 86_400))
        }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        for format in ["EEE, dd MMM yyyy HH:mm:ss zzz", "EEEE, dd-MMM-yy HH:mm:ss zzz", "EEE MMM d HH:mm:ss yyyy"] {
            formatter.dateFormat = format
            if let date = formatter.date(from: t) {
                let seconds = date.timeIntervalSinceNow
                guard seconds > 0 else { return nil }
                return .milliseconds(Int64(min(seconds, 86_400) * 1000))
            }
        }
        return nil
    }
}
