import Foundation
import LoomIR

extension SafeTensors {
    /// Reads and validates the safetensors file at `path` (memory-mapped where possible).
    public static func read(path: String) throws -> SafeTensorsFile {
        if let problem = FileKind.problem(with: path) {
            throw SafeTensorsError(problem == .missing ? .fileNotFound : .unreadable, source: path,
                                   problem == .missing ? "file not found" : "unreadable: path \(problem)")
        }
        let data: Data
        do {
            data = try FileKind.contents(of: path)
        } catch {
            throw SafeTensorsError(.unreadable, source: path, "unreadable: \(error.localizedDescription)")
        }
        return try data.withUnsafeBytes { try parse($0, source: path) }
    }

    /// Parses and validates safetensors bytes held in memory; `source` labels the data in errors.
    public static func read(data: [UInt8], source: String) throws -> SafeTensorsFile {
        try data.withUnsafeBytes { try parse($0, source: source) }
    }

    // MARK: - Parsing

    /// One validated header entry.
    private struct Entry {
        var name: String
        var dtype: SafeTensorsDType
        var shape: [Int]
        var begin: Int
        var end: Int
    }

    static func parse(_ bytes: UnsafeRawBufferPointer, source: String) throws -> SafeTensorsFile {
        guard bytes.count >= 8, let base = bytes.baseAddress else {
            throw SafeTensorsError(.tooShort, source: source,
                                   "file too short: \(bytes.count) bytes, less than the 8-byte header length prefix")
        }
        let headerLength = UInt64(littleEndian: base.loadUnaligned(as: UInt64.self))
        let available = UInt64(bytes.count - 8)
        guard headerLength <= available else {
            throw SafeTensorsError(.truncatedHeader, source: source,
                                   "truncated header: the length prefix announces \(headerLength) header bytes "
                                   + "but only \(available) bytes follow it")
        }
        let headerEnd = 8 + Int(headerLength)
        let header = try parseHeader(UnsafeRawBufferPointer(rebasing: bytes[8..<headerEnd]), source: source)

        var metadata: [String: String] = [:]
        if let raw = header[metadataKey] {
            guard let table = raw as? [String: Any] else {
                throw SafeTensorsError(.invalidMetadata, source: source, key: metadataKey,
                                       "invalid metadata", expected: "a JSON object of strings", found: jsonTypeName(raw))
            }
            for (key, value) in table {
                guard let string = value as? String else {
                    throw SafeTensorsError(.invalidMetadata, source: source, key: "\(metadataKey).\(key)",
                                           "metadata values must be strings",
                                           expected: "string", found: jsonTypeName(value))
                }
                metadata[key] = string
            }
        }

        let dataSize = bytes.count - headerEnd
        var entries: [Entry] = []
        for name in header.keys.sorted() where name != metadataKey {
            entries.append(try parseEntry(name: name, header[name]!, dataSize: dataSize, source: source))
        }

        // Ranges may not overlap (empty tensors occupy no bytes and never overlap).
        entries.sort { ($0.begin, $0.end, $0.name) < ($1.begin, $1.end, $1.name) }
        var widest: Entry? = nil
        for entry in entries where entry.end > entry.begin {
            if let previous = widest, entry.begin < previous.end {
                throw SafeTensorsError(.overlappingRanges, source: source, key: entry.name,
                                       "overlapping tensor ranges: data_offsets [\(entry.begin), \(entry.end)] "
                                       + "overlap tensor '\(previous.name)' at [\(previous.begin), \(previous.end)]")
            }
            if widest == nil || entry.end > widest!.end { widest = entry }
        }

        var tensors: [String: HostTensor] = [:]
        var stored: [String: SafeTensorsDType] = [:]
        var notes: [String] = []
        tensors.reserveCapacity(entries.count)
        for entry in entries {
            let start = base + headerEnd + entry.begin
            let count = entry.shape.reduce(1, *)
            tensors[entry.name] = decode(start, count: count, dtype: entry.dtype, shape: entry.shape)
            stored[entry.name] = entry.dtype
            if entry.dtype == .F64 {
                notes.append("tensor '\(entry.name)': F64 converted to F32 (precision and range may be lost)")
            }
        }
        return SafeTensorsFile(tensors: tensors, metadata: metadata, order: entries.map(\.name),
                               storedDTypes: stored, notes: notes, source: source)
    }

    private static func parseHeader(_ bytes: UnsafeRawBufferPointer, source: String) throws -> [String: Any] {
        guard String(validating: bytes, as: UTF8.self) != nil else {
            throw SafeTensorsError(.invalidHeader, source: source, "invalid header: not valid UTF-8")
        }
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: Data(bytes), options: [])
        } catch {
            let detail = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String
            throw SafeTensorsError(.invalidHeader, source: source,
                                   "invalid header: not valid JSON" + (detail.map { " (\($0))" } ?? ""))
        }
        guard let table = object as? [String: Any] else {
            throw SafeTensorsError(.invalidHeader, source: source, "invalid header: not a JSON object",
                                   expected: "object", found: jsonTypeName(object))
        }
        return table
    }

    private static func parseEntry(name: String, _ raw: Any, dataSize: Int, source: String) throws -> Entry {
        func invalid(_ message: String, expected: String? = nil, found: String? = nil) -> SafeTensorsError {
            SafeTensorsError(.invalidEntry, source: source, key: name, "invalid tensor entry: " + message,
                             expected: expected, found: found)
        }
        guard let fields = raw as? [String: Any] else {
            throw invalid("entry must be a JSON object", expected: "object", found: jsonTypeName(raw))
        }
        for field in ["dtype", "shape", "data_offsets"] where fields[field] == nil {
            throw invalid("missing field '\(field)'")
        }
        guard let dtypeName = fields["dtype"] as? String else {
            throw invalid("field 'dtype' has the wrong type", expected: "string", found: jsonTypeName(fields["dtype"]!))
        }
        guard let dtype = SafeTensorsDType(rawValue: dtypeName) else {
            throw SafeTensorsError(.unsupportedDType, source: source, key: name, "unsupported dtype '\(dtypeName)'",
                                   expected: SafeTensorsDType.allCases.map(\.rawValue).joined(separator: "|"),
                                   found: dtypeName)
        }
        guard let shapeArray = fields["shape"] as? [Any] else {
            throw invalid("field 'shape' has the wrong type", expected: "array of integers",
                          found: jsonTypeName(fields["shape"]!))
        }
        var shape: [Int] = []
        for (axis, value) in shapeArray.enumerated() {
            guard let dim = jsonInt(value) else {
                throw invalid("field 'shape' has the wrong type at index \(axis)", expected: "integer",
                              found: jsonTypeName(value))
            }
            shape.append(dim)
        }
        if let negative = shape.first(where: { $0 < 0 }) {
            throw SafeTensorsError(.invalidShape, source: source, key: name,
                                   "invalid shape: negative dimension \(negative) in \(describeShape(shape))")
        }
        guard let offsetArray = fields["data_offsets"] as? [Any] else {
            throw invalid("field 'data_offsets' has the wrong type", expected: "array of 2 integers",
                          found: jsonTypeName(fields["data_offsets"]!))
        }
        let offsets = offsetArray.compactMap(jsonInt)
        guard offsetArray.count == 2, offsets.count == 2 else {
            throw invalid("field 'data_offsets' has the wrong type", expected: "array of 2 integers",
                          found: "\(offsetArray)")
        }
        let (begin, end) = (offsets[0], offsets[1])
        guard begin >= 0, end >= begin else {
            throw SafeTensorsError(.inconsistentOffsets, source: source, key: name,
                                   "inconsistent data_offsets [\(begin), \(end)]: need 0 <= begin <= end")
        }
        var byteCount = dtype.byteSize
        var overflow = false
        for dim in shape where !overflow {
            (byteCount, overflow) = byteCount.multipliedReportingOverflow(by: dim)
        }
        guard !overflow else {
            throw SafeTensorsError(.invalidShape, source: source, key: name,
                                   "invalid shape: \(describeShape(shape)) of \(dtype.rawValue) is too large")
        }
        guard end - begin == byteCount else {
            throw SafeTensorsError(.inconsistentOffsets, source: source, key: name,
                                   "inconsistent data_offsets [\(begin), \(end)] for shape \(describeShape(shape)) "
                                   + "of \(dtype.rawValue)",
                                   expected: "\(byteCount) bytes", found: "\(end - begin) bytes")
        }
        guard end <= dataSize else {
            throw SafeTensorsError(.truncatedData, source: source, key: name,
                                   "truncated data: data_offsets [\(begin), \(end)] reach past the end of the "
                                   + "data buffer, which holds \(dataSize) bytes")
        }
        return Entry(name: name, dtype: dtype, shape: shape, begin: begin, end: end)
    }

    /// A JSON integer (not a float, not a boolean) that fits in `Int`.
    private static func jsonInt(_ value: Any) -> Int? {
        guard let number = value as? NSNumber else { return nil }
        switch String(cString: number.objCType) {
        case "c", "C", "B", "f", "d": return nil  // booleans and floating-point numbers
        default: return value as? Int
        }
    }

    private static func jsonTypeName(_ value: Any) -> String {
        switch value {
        case is String: return "string"
        case is [Any]: return "array"
        case is [String: Any]: return "object"
        case is NSNull: return "null"
        case let number as NSNumber:
            switch String(cString: number.objCType) {
            case "c", "C", "B": return "boolean"
            case "f", "d": return "number \(number)"
            default: return "integer \(number)"
            }
        default: return "\(type(of: value))"
        }
    }

    // MARK: - Decoding
    //
    // `start` may be unaligned. Same-width types are a single memcpy; widening conversions copy
    // chunks into an aligned scratch buffer and convert them with concrete pointer loops (no
    // generic per-element calls, which are slow in debug builds).

    private static func decode(_ start: UnsafeRawPointer, count: Int, dtype: SafeTensorsDType,
                               shape: [Int]) -> HostTensor {
        switch dtype {
        case .F32:
            let floats = [Float](unsafeUninitializedCapacity: count) { out, initialized in
                if count > 0 { memcpy(out.baseAddress!, start, count * 4) }
                #if _endian(big)
                for i in 0..<count { out[i] = Float(bitPattern: UInt32(littleEndian: out[i].bitPattern)) }
                #endif
                initialized = count
            }
            return HostTensor(shape: shape, floats: floats)
        case .I64:
            let ints = [Int64](unsafeUninitializedCapacity: count) { out, initialized in
                if count > 0 { memcpy(out.baseAddress!, start, count * 8) }
                #if _endian(big)
                for i in 0..<count { out[i] = Int64(littleEndian: out[i]) }
                #endif
                initialized = count
            }
            return HostTensor(shape: shape, ints: ints, dtype: .i64)
        case .F64:
            let floats = convertChunks(start, count: count, from: UInt64.self, to: Float.self) { src, dst, n in
                var (p, q, end) = (src, dst, src + n)
                while p < end { q.pointee = Float(Double(bitPattern: p.pointee)); p += 1; q += 1 }
            }
            return HostTensor(shape: shape, floats: floats)
        case .F16:
            let floats = halfTable.withUnsafeBufferPointer { table in
                convertChunks(start, count: count, from: UInt16.self, to: Float.self) { src, dst, n in
                    let lookup = table.baseAddress!
                    var (p, q, end) = (src, dst, src + n)
                    while p < end { q.pointee = lookup[Int(p.pointee)]; p += 1; q += 1 }
                }
            }
            return HostTensor(shape: shape, floats: floats)
        case .BF16:
            let floats = convertChunks(start, count: count, from: UInt16.self, to: Float.self) { src, dst, n in
                var (p, q, end) = (src, dst, src + n)
                while p < end { q.pointee = Float(bitPattern: UInt32(p.pointee) << 16); p += 1; q += 1 }
            }
            return HostTensor(shape: shape, floats: floats)
        case .I32:
            let ints = convertChunks(start, count: count, from: Int32.self, to: Int64.self) { src, dst, n in
                var (p, q, end) = (src, dst, src + n)
                while p < end { q.pointee = Int64(p.pointee); p += 1; q += 1 }
            }
            return HostTensor(shape: shape, ints: ints, dtype: .i32)
        }
    }

    /// Converts `count` little-endian `S` values at `start` into a new `[D]`: each chunk is memcpy'd
    /// into aligned scratch memory (byte-swapped on big-endian hosts) and handed to `convert(src, dst, n)`.
    private static func convertChunks<S: FixedWidthInteger, D>(
        _ start: UnsafeRawPointer, count: Int, from: S.Type, to: D.Type,
        _ convert: (UnsafePointer<S>, UnsafeMutablePointer<D>, Int) -> Void
    ) -> [D] {
        [D](unsafeUninitializedCapacity: count) { out, initialized in
            let chunk = Swift.min(count, 1 << 16)
            if chunk > 0 {
                let scratch = UnsafeMutablePointer<S>.allocate(capacity: chunk)
                defer { scratch.deallocate() }
                var done = 0
                while done < count {
                    let n = Swift.min(chunk, count - done)
                    memcpy(scratch, start + done * MemoryLayout<S>.size, n * MemoryLayout<S>.size)
                    #if _endian(big)
                    for i in 0..<n { scratch[i] = S(littleEndian: scratch[i]) }
                    #endif
                    convert(scratch, out.baseAddress! + done, n)
                    done += n
                }
            }
            initialized = count
        }
    }

    /// IEEE 754 binary16 -> binary32 for every bit pattern, built once.
    private static let halfTable: [Float] = (0..<65536).map { halfToFloat(UInt16($0)) }

    static func halfToFloat(_ h: UInt16) -> Float {
        let sign = UInt32(h & 0x8000) << 16
        let exponent = Int(h >> 10) & 0x1f
        let mantissa = UInt32(h & 0x3ff)
        switch exponent {
        case 0:
            // Zero or subnormal: mantissa * 2^-24, exact in Float.
            let magnitude = Float(mantissa) * Float(sign: .plus, exponent: -24, significand: 1)
            return sign != 0 ? -magnitude : magnitude
        case 0x1f:
            return Float(bitPattern: sign | 0x7f80_0000 | (mantissa << 13))  // inf / NaN (payload kept)
        default:
            return Float(bitPattern: sign | (UInt32(exponent - 15 + 127) << 23) | (mantissa << 13))
        }
    }
}
