/// This release of jobq, as `jobq-worker --version` and `jobq-admin --version` print it.
public enum JobQVersion {
    /// Semantic version of the package: the Lua layer, the key layout and the record fields of
    /// one minor version stay compatible with workers and producers of the same minor version.
    public static let current = "0.3.0"
}
