import Testing

@testable import JobQ
@testable import JobQRedis

/// The reply and reconnect decisions every connection kind makes, driven without a server: each
/// test walks a command (or a connection) through a sequence of server answers and checks what
/// the connection would do at each step.
@Suite("Reply policy: what a connection does with each server answer")
struct RedisReplyPolicyTests {
    let backoff = RetryBackoff(base: .milliseconds(10), cap: .milliseconds(80))
    var policy: RedisRetryPolicy { RedisRetryPolicy(backoff: backoff, endpoint: "127.0.0.1:6379") }
    let start = ContinuousClock.now

    @Test("replies are classified once: values, NOSCRIPT, the wait-it-out states, READONLY, MOVED and ASK")
    func classification() {
        #expect(RedisReplyKind(.integer(1)) == .answer)
        #expect(RedisReplyKind(.error("WRONGTYPE Operation against a key holding the wrong kind of value")) == .answer)
        #expect(RedisReplyKind(.error("ERR user_script:1: boom")) == .answer)
        #expect(RedisReplyKind(.error("NOSCRIPT No matching script. Please use EVAL.")) == .noScript)
        for code in ["BUSY", "LOADING", "TRYAGAIN", "CLUSTERDOWN", "MASTERDOWN"] {
            #expect(RedisReplyKind(.error("\(code) something")) == .notNow(code), "\(code)")
        }
        #expect(RedisReplyKind(.error("READONLY You can't write against a read only replica.")) == .readOnly)
        #expect(RedisReplyKind(.error("MOVED 12 10.0.0.2:7001")) == .moved(slot: 12, to: .tcp(host: "10.0.0.2", port: 7001)))
        #expect(RedisReplyKind(.error("ASK 12 node-3:7002")) == .ask(slot: 12, to: .tcp(host: "node-3", port: 7002)))
        // Lower case is not a code: Redis writes codes in capitals, and a script's own error
        // text must never be mistaken for one.
        #expect(RedisReplyKind(.error("loading is slow")) == .answer)
    }

    @Test("a script call through a restart: NOSCRIPT → one EVAL; LOADING → resent with growing, capped, jittered backoff; past the deadline → unavailable")
    func scriptThroughRestart() {
        let deadline = start + .milliseconds(500)
        #expect(policy.decide(.error("NOSCRIPT No matching script"), sentAsEvalSHA: true, retries: 0, deadline: deadline, now: start) == .resendAsEval)
        // EVAL never answers NOSCRIPT; if something does, the caller sees it rather than a loop.
        #expect(policy.decide(.error("NOSCRIPT No matching script"), sentAsEvalSHA: false, retries: 1, deadline: deadline, now: start) == .deliver)
        var now = start
        var retries = 0
        var delays: [Duration] = []
        // Bounded: at most 100 answers.
        for _ in 0..<100 {
            switch policy.decide(.error("LOADING Redis is loading the dataset in memory"), sentAsEvalSHA: false, retries: retries, deadline: deadline, now: now)
            {
            case .retry(let notBefore):
                #expect(notBefore > now)
                delays.append(notBefore - now)
                now = notBefore
                retries += 1
                continue
            case .fail(let error):
                #expect(error.code == .unavailable)
                #expect(error.detail.contains("LOADING") && error.detail.contains("retry deadline"), "\(error.detail)")
            default:
                Issue.record("unexpected decision")
            }
            break
        }
        #expect(now >= deadline, "failed only at the deadline")
        #expect(delays.count >= 6, "\(delays)")
        for (attempt, delay) in delays.enumerated() {
            let ceiling = backoff.ceiling(attempt: attempt)
            #expect(delay >= ceiling / 2 && delay <= ceiling, "attempt \(attempt): \(delay), ceiling \(ceiling)")
            #expect(delay <= backoff.cap)
        }
        // And the answer that finally comes is delivered.
        #expect(policy.decide(.integer(7), sentAsEvalSHA: false, retries: retries, deadline: deadline, now: now) == .deliver)
    }

    @Test("READONLY (a demoted primary): reconnect and resend until the deadline, then one line that says to point at the primary")
    func readOnly() {
        let deadline = start + .seconds(1)
        #expect(policy.decide(.error("READONLY no"), sentAsEvalSHA: false, retries: 0, deadline: deadline, now: start) == .reconnectThenResend)
        guard case .fail(let error) = policy.decide(.error("READONLY no"), sentAsEvalSHA: false, retries: 9, deadline: deadline, now: deadline) else {
            Issue.record("READONLY past the deadline must fail")
            return
        }
        #expect(error.code == .unavailable && error.detail.contains("point jobq at the primary"))
    }

    @Test("redirects: followed by the cluster router (MOVED remaps, ASK is once), handed to the caller on a single server")
    func redirects() {
        let moved = RedisReply.error("MOVED 3999 127.0.0.1:7002")
        let ask = RedisReply.error("ASK 3999 127.0.0.1:7003")
        let deadline = start + .seconds(1)
        #expect(
            policy.decide(moved, sentAsEvalSHA: false, retries: 0, deadline: deadline, now: start, cluster: true)
                == .redirect(to: .tcp(host: "127.0.0.1", port: 7002), asking: false, slot: 3999))
        #expect(
            policy.decide(ask, sentAsEvalSHA: false, retries: 0, deadline: deadline, now: start, cluster: true)
                == .redirect(to: .tcp(host: "127.0.0.1", port: 7003), asking: true, slot: 3999))
        // A blocking wait on a single connection reads MOVED itself (its queue moved node).
        #expect(policy.decide(moved, sentAsEvalSHA: false, retries: 0, deadline: deadline, now: start) == .deliver)
        var budget = ClusterRetryBudget(deadline: deadline)
        for round in 1...ClusterRetryBudget.maxRedirects {
            #expect(budget.redirected(endpoint: nil) == nil, "round \(round)")
        }
        let error = budget.redirected(endpoint: nil)
        #expect(error?.code == .unavailable && error?.detail.contains("still redirected") == true)
    }

    @Test("a reply lost with the connection: an idempotent command is resent until its deadline; any other fails outcomeUnknown")
    func lostReply() {
        let lost = RedisError(.outcomeUnknown, endpoint: "127.0.0.1:6379", detail: "connection reset after the command was sent")
        let deadline = start + .seconds(1)
        #expect(policy.decideLost(idempotent: true, deadline: deadline, now: start, error: lost) == .resend)
        #expect(policy.decideLost(idempotent: false, deadline: deadline, now: start, error: lost) == .fail(lost))
        #expect(policy.decideLost(idempotent: true, deadline: deadline, now: deadline, error: lost) == .fail(lost))
        // The router's view of a flight that failed on a node.
        let budget = ClusterRetryBudget(deadline: deadline)
        #expect(budget.mayRetry(after: lost, idempotent: true, now: start))
        #expect(!budget.mayRetry(after: lost, idempotent: false, now: start), "it may have run: never resent")
        let down = RedisError(.connectionFailed, endpoint: nil, detail: "refused")
        #expect(budget.mayRetry(after: down, idempotent: false, now: start), "nothing was sent")
        #expect(!budget.mayRetry(after: down, idempotent: false, now: deadline))
        #expect(!budget.mayRetry(after: RedisError(.authFailed, endpoint: nil, detail: "WRONGPASS"), idempotent: true, now: start))
    }

    @Test(
        "a failed connect: a wrong password, a TLS check or a bad URL fails every waiting command at once; anything else fails only those past their deadline")
    func connectFailures() {
        for code in [RedisError.Code.authFailed, .tlsFailed, .invalidURL] {
            let error = RedisError(code, endpoint: "e", detail: "d")
            #expect(policy.decideConnectFailure(error) == .failAll(error), "\(code)")
        }
        guard case .failExpired(let error) = policy.decideConnectFailure(RedisError(.connectionFailed, endpoint: "e", detail: "Connection refused"))
        else {
            Issue.record("a refused connect is waited out")
            return
        }
        #expect(error.code == .unavailable && error.detail.contains("Connection refused"))
    }

    @Test("reconnects back off exponentially with jitter up to the cap, and start again from the base after a reply")
    func reconnectSchedule() {
        var schedule = ReconnectSchedule(backoff: backoff, now: start)
        #expect(schedule.isDue(start), "the first connect is at once")
        var now = start
        for attempt in 0..<8 {
            schedule.failed(now: now)
            let wait = schedule.nextAttempt - now
            let ceiling = backoff.ceiling(attempt: attempt)
            #expect(wait >= ceiling / 2 && wait <= ceiling, "attempt \(attempt): \(wait)")
            #expect(!schedule.isDue(now) || wait == .zero)
            now = schedule.nextAttempt
            #expect(schedule.isDue(now))
        }
        #expect(schedule.attempt == 8)
        schedule.succeeded()
        schedule.failed(now: now)
        #expect(schedule.nextAttempt - now <= backoff.base, "after a reply, from the base again")
    }
}
