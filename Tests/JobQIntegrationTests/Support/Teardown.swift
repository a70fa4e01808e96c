import Synchronization
import Testing

/// Teardown that is awaited, in the test's own scope: `onTeardown { await client.close() }`
/// registers a step; the `.awaitedTeardown` trait runs every step of a test after its body,
/// newest first, and waits for them — also when the body throws — so a test's clients,
/// servers and files are gone before the next test starts (instead of a fire-and-forget `Task`
/// in a `defer`, which may still run while the next test measures).
final class TeardownBag: Sendable {
    @TaskLocal static var current: TeardownBag?
    private let steps = Mutex<[@Sendable () async -> Void]>([])

    func add(_ step: @escaping @Sendable () async -> Void) {
        steps.withLock { $0.append(step) }
    }

    func run() async {
        let all = steps.withLock { s in
            defer { s = [] }
            return s
        }
        for step in all.reversed() { await step() }
    }
}

/// Registers a step to run, awaited, when the current test ends (see ``TeardownBag``).
func onTeardown(_ step: @escaping @Sendable () async -> Void) {
    guard let bag = TeardownBag.current else {
        Issue.record("onTeardown outside a test scoped by .awaitedTeardown: the step ran unawaited")
        Task { await step() }
        return
    }
    bag.add(step)
}

/// Gives every test of a suite (and of its nested suites) its own ``TeardownBag``.
struct AwaitedTeardown: SuiteTrait, TestTrait, TestScoping {
    var isRecursive: Bool { true }

    func scopeProvider(for test: Test, testCase: Test.Case?) -> AwaitedTeardown? {
        testCase == nil ? nil : self
    }

    func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        let bag = TeardownBag()
        do {
            try await TeardownBag.$current.withValue(bag) { try await function() }
        } catch {
            await bag.run()
            throw error
        }
        await bag.run()
    }
}

extension Trait where Self == AwaitedTeardown {
    /// Awaited, scoped teardown for the suite's tests: see ``onTeardown(_:)``.
    static var awaitedTeardown: Self { AwaitedTeardown() }
}
