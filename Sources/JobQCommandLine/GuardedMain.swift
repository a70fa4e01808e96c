public import ArgumentParser
import JobQ

extension AsyncParsableCommand {
    /// ArgumentParser's `main`, after the process is set up to write to closed pipes safely:
    /// `jobq-bench --help | true` ends with status 0 instead of dying of SIGPIPE. `arguments`
    /// replaces the command line; `onError` handles what the command throws (the default prints
    /// it ArgumentParser's way, with its exit code). Every executable of the package starts here.
    public static func guardedMain(arguments: [String]? = nil, onError: (@Sendable (any Error) -> Never)? = nil) async {
        StandardStreams.prepare()
        do {
            var command = try parseAsRoot(arguments)
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            if let onError { onError(error) }
            exit(withError: error)
        }
    }
}
