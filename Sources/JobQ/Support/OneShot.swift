import Synchronization

/// A value settled once, by the first of several racing parties; awaited by one reader.
package final class OneShot<Value: Sendable>: Sendable {
    private let state = Mutex<(value: Value?, waiter: CheckedContinuation<Value, Never>?)>((nil, nil))

    package init() {}

    /// Settles the value; later calls are ignored.
    package func settle(_ value: Value) {
        let c = state.withLock { s -> CheckedContinuation<Value, Never>? in
            guard s.value == nil else { return nil }
            s.value = value
            defer { s.waiter = nil }
            return s.waiter
        }
        c?.resume(returning: value)
    }

    package func value() async -> Value {
        await withCheckedContinuation { c in
            let now = state.withLock { s -> Value? in
                if let v = s.value { return v }
                s.waiter = c
                return nil
            }
            if let now { c.resume(returning: now) }
        }
    }
}
