import Foundation
import LoomIR
import LoomRuntime

/// The element types of the IDX format (the third byte of the magic number).
public enum IDXType: UInt8, Sendable, CaseIterable {
    case uint8 = 0x08
    case int8 = 0x09
    case int16 = 0x0B
    case int32 = 0x0C
    case float32 = 0x0D
    case float64 = 0x0E

    /// Bytes per element in the file.
    public var byteSize: Int {
        switch self {
        case .uint8, .int8: return 1
        case .int16: return 2
        case .int32, .float32: return 4
        case .float64: return 8
        }
    }
}

/// One array read from an IDX file: the element payload is kept as the raw big-endian bytes
/// of the file (cheap for the usual ubyte images) and converted on demand.
public struct IDXArray: Sendable, Equatable {
    /// The element type from the magic number.
    public var type: IDXType
    /// The shape as declared in the file header.
    public var headerShape: [Int]
    /// The shape of the data held here: `headerShape` with the first dimension reduced to the
    /// `limit` given to the reader, if any.
    public var shape: [Int]
    /// The element bytes, big-endian, `shape` product × `type.byteSize` of them.
    public var payload: [UInt8]
    /// The file path or label the array was read from.
    public var source: String

    /// Creates an array; `payload` must hold exactly the bytes `shape` and `type` call for.
    public init(type: IDXType, shape: [Int], headerShape: [Int]? = nil, payload: [UInt8], source: String = "<memory>") {
        precondition(shape.reduce(1, *) * type.byteSize == payload.count,
                     "IDXArray: shape \(describeShape(shape)) of \(type) needs \(shape.reduce(1, *) * type.byteSize) bytes, got \(payload.count)")
        self.type = type
        self.shape = shape
        self.headerShape = headerShape ?? shape
        self.payload = payload
        self.source = source
    }

    /// Number of elements held.
    public var elementCount: Int { shape.reduce(1, *) }

    /// The elements converted to Float (uint8 0...255 stays 0...255).
    public func floats() -> [Float] {
        let count = elementCount
        return [Float](unsafeUninitializedCapacity: count) { out, initialized in
            payload.withUnsafeBytes { raw in
                guard let base = raw.baseAddress, let dst = out.baseAddress else { return }
                switch type {
                case .uint8:
                    let src = base.assumingMemoryBound(to: UInt8.self)
                    for i in 0..<count { dst[i] = Float(src[i]) }
                case .int8:
                    let src = base.assumingMemoryBound(to: Int8.self)
                    for i in 0..<count { dst[i] = Float(src[i]) }
                case .int16:
                    for i in 0..<count { dst[i] = Float(Int16(bigEndian: base.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self))) }
                case .int32:
                    for i in 0..<count { dst[i] = Float(Int32(bigEndian: base.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self))) }
                case .float32:
                    for i in 0..<count {
                        dst[i] = Float(bitPattern: UInt32(bigEndian: base.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
                    }
                case .float64:
                    for i in 0..<count {
                        dst[i] = Float(Double(bitPattern: UInt64(bigEndian: base.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))))
                    }
                }
            }
            initialized = count
        }
    }

    /// The elements as integers (labels); float elements must hold integral values.
    public func integers() throws -> [Int64] {
        if type == .float32 || type == .float64 {
            let values = floats()
            var out = [Int64](repeating: 0, count: values.count)
            for (i, value) in values.enumerated() {
                guard let integer = Int64(exactly: value) else {
                    throw DiffusionError("IDX file '\(source)': element \(i) = \(value) is not an integer label")
                }
                out[i] = integer
            }
            return out
        }
        let count = elementCount
        return [Int64](unsafeUninitializedCapacity: count) { out, initialized in
            payload.withUnsafeBytes { raw in
                guard let base = raw.baseAddress, let dst = out.baseAddress else { return }
                switch type {
                case .uint8: for i in 0..<count { dst[i] = Int64(base.load(fromByteOffset: i, as: UInt8.self)) }
                case .int8: for i in 0..<count { dst[i] = Int64(base.load(fromByteOffset: i, as: Int8.self)) }
                case .int16:
                    for i in 0..<count { dst[i] = Int64(Int16(bigEndian: base.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self))) }
                default:
                    for i in 0..<count { dst[i] = Int64(Int32(bigEndian: base.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self))) }
                }
            }
            initialized = count
        }
    }
}

/// Reads IDX files (the MNIST / Fashion-MNIST format), plain or gzip-compressed.
///
/// Layout: magic `00 00 TT DD` (TT the type code, DD the number of dimensions), DD big-endian
/// UInt32 dimensions, then the elements, big-endian, row-major. Compression is detected from the
/// gzip magic 0x1f 0x8b, not from the file name.
public enum IDXReader {
    /// Reads the IDX file at `path`. With `limit`, only the first `limit` entries along the first
    /// dimension are read (and, for gzip files, decompressed); truncation beyond them goes unnoticed.
    /// `missingHint` is appended to the error when the file does not exist.
    public static func read(path: String, limit: Int? = nil, missingHint: String? = nil) throws -> IDXArray {
        let bytes = try readFileBytes(path: path, what: "IDX file", hint: missingHint)
        return try parse(bytes, source: path, limit: limit)
    }

    /// Parses IDX bytes (plain or gzip); `source` names the data in errors.
    public static func parse(_ bytes: [UInt8], source: String = "<memory>", limit: Int? = nil) throws -> IDXArray {
        if let limit, limit < 0 {
            throw DiffusionError("IDX file '\(source)': limit must not be negative, got \(limit)")
        }
        if Gzip.isGzip(bytes) {
            let inflater = try GzipInflater(compressed: bytes, source: source)
            var offset = 0
            return try parse(source: source, limit: limit, compressed: true) { count, what in
                let chunk = try inflater.read(upTo: count)
                defer { offset += chunk.count }
                guard chunk.count == count else { throw truncated(source, what, at: offset, expected: count, found: chunk.count) }
                return chunk
            }
        }
        var offset = 0
        return try parse(source: source, limit: limit, compressed: false) { count, what in
            let available = bytes.count - offset
            guard available >= count else { throw truncated(source, what, at: offset, expected: count, found: available) }
            defer { offset += count }
            return Array(bytes[offset..<(offset + count)])
        }
    }

    /// Serializes an array to IDX bytes (plain; pass the result to `Gzip.compress` for .gz).
    public static func encode(_ array: IDXArray) -> [UInt8] {
        var bytes: [UInt8] = [0, 0, array.type.rawValue, UInt8(array.shape.count)]
        for dimension in array.shape {
            withUnsafeBytes(of: UInt32(dimension).bigEndian) { bytes.append(contentsOf: $0) }
        }
        return bytes + array.payload
    }

    /// The shared header/payload logic over a byte source `take(count, what)` that returns exactly
    /// `count` bytes or throws.
    private static func parse(source: String, limit: Int?, compressed: Bool,
                              take: (Int, String) throws -> [UInt8]) throws -> IDXArray {
        let kind = compressed ? "gzip-compressed IDX file" : "IDX file"
        let magic = try take(4, "magic number")
        guard magic[0] == 0, magic[1] == 0 else {
            let found = magic.map { "0x" + String($0, radix: 16, uppercase: true).leftPadded(to: 2) }.joined(separator: " ")
            throw DiffusionError("\(kind) '\(source)': wrong magic number: expected 0x00 0x00 <type> <ndims>, found \(found)")
        }
        guard let type = IDXType(rawValue: magic[2]) else {
            let code = "0x" + String(magic[2], radix: 16, uppercase: true).leftPadded(to: 2)
            throw DiffusionError("\(kind) '\(source)': unsupported element type code \(code) (supported: "
                                 + "0x08 ubyte, 0x09 byte, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64)")
        }
        let rank = Int(magic[3])
        let dimensionBytes = try take(4 * rank, "header (\(rank) dimensions)")
        var headerShape: [Int] = []
        for axis in 0..<rank {
            let value = dimensionBytes[(4 * axis)..<(4 * axis + 4)].reduce(0) { $0 << 8 | Int($1) }
            headerShape.append(value)
        }
        var shape = headerShape
        if let limit, !shape.isEmpty { shape[0] = Swift.min(shape[0], limit) }
        let (elements, overflow) = shape.reduce((1, false)) { acc, d in
            let (product, o) = acc.0.multipliedReportingOverflow(by: d)
            return (product, acc.1 || o)
        }
        let (byteCount, overflow2) = elements.multipliedReportingOverflow(by: type.byteSize)
        guard !overflow, !overflow2 else {
            throw DiffusionError("\(kind) '\(source)': shape \(describeShape(headerShape)) is too large")
        }
        let payload = try take(byteCount, "data for shape \(describeShape(shape)) of \(type)")
        return IDXArray(type: type, shape: shape, headerShape: headerShape, payload: payload, source: source)
    }

    private static func truncated(_ source: String, _ what: String, at offset: Int, expected: Int, found: Int) -> DiffusionError {
        DiffusionError("IDX file '\(source)': truncated file: the \(what) needs \(expected) bytes at offset \(offset), "
                       + "found \(found)")
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
