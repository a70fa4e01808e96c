import Foundation
import Testing

@testable import JobQWorkerKit

@Suite("http handler: Retry-After", .awaitedTeardown)
struct RetryAfterTests {
    @Test("delta-seconds and HTTP-dates become the retry delay (at most a day); negative, malformed and past values fall back to the job's backoff")
    func parsing() {
        #expect(HTTPHandler.retryAfter("120") == .seconds(120))
        #expect(HTTPHandler.retryAfter(" 0 ") == .seconds(0))
        #expect(HTTPHandler.retryAfter("999999999999") == .seconds(86_400))
        for bad in ["-5", "1.5", "soon", "", "0x10", "Wed, 21 Oct 2015 07:28:00 GMT"] {
            #expect(HTTPHandler.retryAfter(bad) == nil, "\(bad)")
        }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        let inAMinute = formatter.string(from: Date().addingTimeInterval(60))
        let delay = HTTPHandler.retryAfter(inAMinute)
        #expect(delay.map { $0 > .seconds(55) && $0 <= .seconds(60) } == true, "\(inAMinute) → \(String(describing: delay))")
    }
}
