import Foundation
import LoomRuntime

// File-system helpers shared by the data loaders; errors name the path at fault.

/// Reads a whole file, throwing a `DiffusionError` that names the path when it is missing,
/// a directory or unreadable. `what` describes the file ("IDX file", "gzip file"...).
func readFileBytes(path: String, what: String, hint: String? = nil) throws -> [UInt8] {
    if let problem = FileKind.problem(with: path) {
        throw DiffusionError("\(what) '\(path)' " + (problem == .missing ? "not found" + (hint.map { "; \($0)" } ?? "") : "\(problem)"))
    }
    let data: Data
    do {
        data = try FileKind.contents(of: path)
    } catch {
        throw DiffusionError("\(what) '\(path)' is unreadable: \(error.localizedDescription)")
    }
    return data.withUnsafeBytes { Array($0.bindMemory(to: UInt8.self)) }
}

/// "it contains: a, b, c" (at most `limit` names, then "and N more"), or "it is empty".
func describeListing(_ entries: [String], limit: Int = 20) -> String {
    guard !entries.isEmpty else { return "it is empty" }
    var text = "it contains: " + entries.prefix(limit).joined(separator: ", ")
    if entries.count > limit { text += " and \(entries.count - limit) more" }
    return text
}
