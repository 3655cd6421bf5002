import Foundation

/// Where the repository and its test fixtures are, from this file's own location.
public enum RepositoryPaths {
    /// The repository root (this file is `Tests/LoomTestSupport/RepositoryPaths.swift`).
    public static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    /// `Tests/Fixtures`.
    public static let fixtures = root.appendingPathComponent("Tests").appendingPathComponent("Fixtures")
}
