import Foundation

/// JSON decoding errors in words for messages about a user's file: what was wrong and where
/// (`at .rows[3].guidance`), instead of the decoder's nested description.
enum JSONFileError {
    static func describe(_ error: Error) -> String {
        guard let error = error as? DecodingError else { return error.localizedDescription }
        func sentence(_ context: DecodingError.Context) -> String {
            context.debugDescription.trimmingCharacters(in: CharacterSet(charactersIn: ". "))
        }
        func location(_ path: [CodingKey]) -> String {
            path.isEmpty ? "at the top level" : "at " + path.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
        }
        switch error {
        case .dataCorrupted(let context): return sentence(context) + ", " + location(context.codingPath)
        case .keyNotFound(let key, let context): return "no '\(key.stringValue)' \(location(context.codingPath))"
        case .typeMismatch(_, let context), .valueNotFound(_, let context):
            return sentence(context) + ", " + location(context.codingPath)
        @unknown default: return "\(error)"
        }
    }
}
