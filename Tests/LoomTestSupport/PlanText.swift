import LoomRuntime

/// Plan-file text as a hostile editor would leave it.
public enum PlanText {
    /// `text` with its checksum recomputed, as an editor who knows the format would leave it (the
    /// verifier's checks must still catch what the edit did).
    public static func resealed(_ text: String) -> String {
        let newline = text.firstIndex(of: "\n")!
        let rest = String(text[text.index(after: newline)...])
        return "\(Plan.magic) \(Plan.formatVersion) \(Plan.checksum(rest))\n" + rest
    }
}
