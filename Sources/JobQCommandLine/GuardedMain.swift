public import ArgumentParser
import JobQ

extension AsyncParsableCommand {
    /// ArgumentParser's `main`, after the process is set up to write to closed pipes safely:
    /// `jobq-bench --help | true` ends with status 0 instead of dying of SIGPIPE.
    public static func guardedMain() async {
        StandardStreams.prepare()
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}
