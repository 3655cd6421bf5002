import Foundation
import LoomIR

// Hand-written safetensors support (https://github.com/huggingface/safetensors):
//
//   [u64 little-endian N][N bytes UTF-8 JSON header, maybe space-padded][data buffer]
//
// The header maps tensor names to {"dtype", "shape", "data_offsets": [begin, end]} (offsets
// relative to the start of the data buffer, little-endian data) plus an optional
// "__metadata__" object of string -> string. Reading lives in SafeTensorsReader.swift,
// writing in SafeTensorsWriter.swift, the error type in SafeTensorsError.swift.

/// Reads and writes safetensors files. See `read(path:)`, `read(data:source:)`, `write` and `encode`.
public enum SafeTensors {
    /// The JSON key reserved for the string -> string metadata table.
    public static let metadataKey = "__metadata__"

    /// The first value that does not fit in `Int32`, if any (a pointer loop: fast in debug builds too).
    static func firstValueOutsideInt32(_ values: [Int64]) -> Int64? {
        values.withUnsafeBufferPointer { buffer in
            guard var p = buffer.baseAddress else { return nil }
            let end = p + buffer.count
            while p < end {
                let value = p.pointee
                if value < Int64(Int32.min) || value > Int64(Int32.max) { return value }
                p += 1
            }
            return nil
        }
    }
}

/// Element types that can appear in a safetensors file and that Loom understands.
/// F32/F64/F16/BF16 load as `f32` host tensors, I32/I64 as integer host tensors.
public enum SafeTensorsDType: String, Sendable, CaseIterable, Equatable {
    case F32, F64, F16, BF16, I64, I32

    /// Bytes per element in the file.
    public var byteSize: Int {
        switch self {
        case .F64, .I64: return 8
        case .F32, .I32: return 4
        case .F16, .BF16: return 2
        }
    }

    /// The host dtype a tensor of this stored type is loaded as.
    public var hostDType: DType {
        switch self {
        case .F32, .F64, .F16, .BF16: return .f32
        case .I64: return .i64
        case .I32: return .i32
        }
    }

    /// The stored dtype used when writing a host tensor of type `dtype`.
    public init(writing dtype: DType) {
        switch dtype {
        case .f32: self = .F32
        case .i32: self = .I32
        case .i64: self = .I64
        }
    }
}

/// The contents of a safetensors file.
public struct SafeTensorsFile: Equatable, Sendable {
    /// Tensors by name, converted to host dtypes (floats -> `f32`, I32 -> `i32`, I64 -> `i64`).
    public var tensors: [String: HostTensor]
    /// The `__metadata__` table (empty if the file has none).
    public var metadata: [String: String]
    /// Tensor names in data-offset order (ties broken by name).
    public var order: [String]
    /// The dtype each tensor had in the file (e.g. `.F64` for a tensor now held as `f32`).
    public var storedDTypes: [String: SafeTensorsDType]
    /// Notes about lossy conversions made while reading (e.g. F64 narrowed to F32).
    public var notes: [String]
    /// The path or label the file was read from; used in error messages.
    public var source: String

    /// Creates a file value; `storedDTypes` defaults to the host tensors' own dtypes.
    public init(tensors: [String: HostTensor], metadata: [String: String] = [:], order: [String]? = nil,
                storedDTypes: [String: SafeTensorsDType]? = nil, notes: [String] = [],
                source: String = "<memory>") {
        self.tensors = tensors
        self.metadata = metadata
        self.order = order ?? tensors.keys.sorted()
        self.storedDTypes = storedDTypes ?? tensors.mapValues { SafeTensorsDType(writing: $0.dtype) }
        self.notes = notes
        self.source = source
    }

    /// The tensors as (name, tensor) pairs in `order`, ready to pass to `SafeTensors.write`.
    public var orderedTensors: [(String, HostTensor)] {
        order.compactMap { name in tensors[name].map { (name, $0) } }
    }
}

/// Checks a loaded tensor set against an expected table: one entry names a key and its type.
public struct TensorSpec: Equatable, Hashable, Sendable, CustomStringConvertible {
    /// The tensor key.
    public var name: String
    /// The expected dtype and shape.
    public var type: TensorType

    /// Creates a spec for key `name` of type `type`.
    public init(name: String, type: TensorType) {
        self.name = name
        self.type = type
    }

    /// `name: f32[2,3]`.
    public var description: String { "\(name): \(type)" }
}

extension SafeTensorsFile {
    /// Returns the tensor `name`, converted to the expected dtype if lossless (F32 stays F32;
    /// I32/I64 -> ints, I64 -> i32 only when every value fits), or throws: missing key,
    /// wrong dtype, shape mismatch (naming the key, expected and found shapes).
    public func tensor(_ name: String, expected: TensorType) throws -> HostTensor {
        guard var tensor = tensors[name] else {
            throw SafeTensorsError(.missingKey, source: source, key: name, "missing tensor",
                                   expected: expected.description, found: "no such key")
        }
        let stored = storedDTypes[name]?.rawValue ?? tensor.dtype.rawValue
        if tensor.dtype != expected.dtype {
            switch (tensor.dtype, expected.dtype) {
            case (.i32, .i64):
                tensor.dtype = .i64
            case (.i64, .i32):
                if let bad = SafeTensors.firstValueOutsideInt32(tensor.ints) {
                    throw SafeTensorsError(.dtypeMismatch, source: source, key: name,
                                           "dtype mismatch: value \(bad) does not fit in i32",
                                           expected: expected.dtype.rawValue, found: stored)
                }
                tensor.dtype = .i32
            default:
                throw SafeTensorsError(.dtypeMismatch, source: source, key: name, "dtype mismatch",
                                       expected: expected.dtype.rawValue, found: stored)
            }
        }
        guard tensor.shape == expected.shape else {
            throw SafeTensorsError(.shapeMismatch, source: source, key: name, "shape mismatch",
                                   expected: describeShape(expected.shape), found: describeShape(tensor.shape))
        }
        return tensor
    }

    /// Validates that the file holds exactly the `expected` keys, ignoring names (on both sides)
    /// that start with any of `ignoringPrefixes`; reports all missing and all unexpected keys in one error.
    public func validateKeys(expected: Set<String>, ignoringPrefixes: [String] = []) throws {
        func kept(_ name: String) -> Bool { !ignoringPrefixes.contains { name.hasPrefix($0) } }
        let present = Set(tensors.keys.filter(kept))
        let wanted = Set(expected.filter(kept))
        let missing = wanted.subtracting(present).sorted()
        let unexpected = present.subtracting(wanted).sorted()
        guard missing.isEmpty && unexpected.isEmpty else {
            var parts: [String] = []
            if !missing.isEmpty {
                parts.append("\(missing.count) missing key\(missing.count == 1 ? "" : "s"): "
                             + missing.joined(separator: ", "))
            }
            if !unexpected.isEmpty {
                parts.append("\(unexpected.count) unexpected key\(unexpected.count == 1 ? "" : "s"): "
                             + unexpected.joined(separator: ", "))
            }
            throw SafeTensorsError(.keyMismatch, source: source, "key set mismatch: " + parts.joined(separator: "; "))
        }
    }

    /// Checks keys (as `validateKeys`) and every spec's dtype and shape, reporting all problems
    /// in one error; returns the tensors converted as by `tensor(_:expected:)`, keyed by name.
    @discardableResult
    public func validate(_ specs: [TensorSpec], ignoringPrefixes: [String] = []) throws -> [String: HostTensor] {
        var problems: [String] = []
        do {
            try validateKeys(expected: Set(specs.map(\.name)), ignoringPrefixes: ignoringPrefixes)
        } catch let error as SafeTensorsError {
            problems.append(error.message)
        }
        var result: [String: HostTensor] = [:]
        for spec in specs where tensors[spec.name] != nil {
            do {
                result[spec.name] = try tensor(spec.name, expected: spec.type)
            } catch let error as SafeTensorsError {
                problems.append("'\(spec.name)': \(error.message) (expected \(error.expected ?? "?"), found \(error.found ?? "?"))")
            }
        }
        guard problems.isEmpty else {
            throw SafeTensorsError(.keyMismatch, source: source,
                                   "\(problems.count) problem\(problems.count == 1 ? "" : "s"): "
                                   + problems.joined(separator: "; "))
        }
        return result
    }
}
