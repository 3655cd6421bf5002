import Foundation

/// An error reading, writing or validating a safetensors file. The description names the file
/// (`source`), the tensor key when one is involved, and what was expected versus found.
public struct SafeTensorsError: Error, CustomStringConvertible, Equatable, Sendable {
    /// What went wrong, for programmatic matching; the human-readable text is in `description`.
    public enum Kind: String, Sendable, Equatable {
        case fileNotFound, unreadable, tooShort, truncatedHeader, invalidHeader, invalidEntry
        case unsupportedDType, invalidShape, inconsistentOffsets, truncatedData, overlappingRanges
        case invalidMetadata, invalidTensor, missingKey, dtypeMismatch, shapeMismatch, keyMismatch
        case writeFailed
    }

    /// The category of the failure.
    public var kind: Kind
    /// The file path, or the `source` label given to `SafeTensors.read(data:source:)`.
    public var source: String
    /// The tensor (or metadata) key involved, if any.
    public var key: String?
    /// What went wrong, in words.
    public var message: String
    /// What was expected (a shape, dtype, byte count...), if applicable.
    public var expected: String?
    /// What was found instead, if applicable.
    public var found: String?

    /// Creates an error; `expected`/`found` are appended to the description as "(expected X, found Y)".
    public init(_ kind: Kind, source: String, key: String? = nil, _ message: String,
                expected: String? = nil, found: String? = nil) {
        self.kind = kind
        self.source = source
        self.key = key
        self.message = message
        self.expected = expected
        self.found = found
    }

    /// `safetensors file 'a.safetensors', key 'w': shape mismatch (expected [2, 3], found [3, 2])`.
    public var description: String {
        var text = "safetensors file '\(source)'"
        if let key { text += ", key '\(key)'" }
        text += ": \(message)"
        if expected != nil || found != nil {
            text += " (expected \(expected ?? "?"), found \(found ?? "?"))"
        }
        return text
    }
}

extension SafeTensorsError: LocalizedError {
    /// Same as `description`, so `localizedDescription` is informative too.
    public var errorDescription: String? { description }
}
