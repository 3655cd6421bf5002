import Foundation
import LoomIR
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

extension SafeTensors {
    /// Writes `tensors` (in the given order; f32 as F32, i32 as I32, i64 as I64) and `metadata`
    /// to `path` atomically: the bytes go to a temporary file in the same directory, which is
    /// fsynced and then renamed over the target, so readers see either the old or the new file.
    public static func write(_ tensors: [(String, HostTensor)], metadata: [String: String], to path: String) throws {
        let plan = try makePlan(tensors, metadata: metadata, source: path)
        let url = URL(fileURLWithPath: path)
        let directory = url.deletingLastPathComponent().path
        let temporary = directory + "/." + url.lastPathComponent
            + ".tmp-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        func failure(_ what: String) -> SafeTensorsError {
            SafeTensorsError(.writeFailed, source: path, "write failed: \(what): \(String(cString: strerror(errno)))")
        }

        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw failure("cannot create temporary file '\(temporary)'") }
        var fdOpen = true
        var renamed = false
        defer {
            if fdOpen { close(fd) }
            if !renamed { unlink(temporary) }
        }
        try serialize(plan) { chunk in
            var offset = 0
            while offset < chunk.count {
                let written = posixWrite(fd, chunk.baseAddress! + offset, chunk.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    throw failure("cannot write temporary file '\(temporary)'")
                }
                offset += written
            }
        }
        guard fsync(fd) == 0 else { throw failure("fsync of '\(temporary)' failed") }
        fdOpen = false
        guard close(fd) == 0 else { throw failure("close of '\(temporary)' failed") }
        guard rename(temporary, path) == 0 else { throw failure("cannot rename '\(temporary)' over the target") }
        renamed = true
        // Make the rename itself durable; best effort (some filesystems refuse fsync on directories).
        let directoryFD = open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directoryFD >= 0 {
            _ = fsync(directoryFD)
            close(directoryFD)
        }
    }

    /// Serializes `tensors` (in the given order) and `metadata` to safetensors bytes. The tensors
    /// must be well-formed (`elementCount` values in `floats`/`ints`, i32 values in range) and
    /// names unique and not `__metadata__`; violating that is a programming error (trap).
    public static func encode(_ tensors: [(String, HostTensor)], metadata: [String: String]) -> [UInt8] {
        let plan: Plan
        do {
            plan = try makePlan(tensors, metadata: metadata, source: "<memory>")
        } catch {
            preconditionFailure("SafeTensors.encode: \(error)")
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(plan.totalSize)
        // The sink never throws here.
        try! serialize(plan) { bytes.append(contentsOf: $0) }
        return bytes
    }

    // MARK: - Implementation

    /// A validated header plus the tensors to stream after it.
    struct Plan {
        var header: [UInt8]
        var tensors: [(String, HostTensor)]
        var totalSize: Int
    }

    static func makePlan(_ tensors: [(String, HostTensor)], metadata: [String: String], source: String) throws -> Plan {
        var seen = Set<String>()
        var json = "{"
        var first = true
        if !metadata.isEmpty {
            json += jsonString(metadataKey) + ":{"
            json += metadata.keys.sorted().map { jsonString($0) + ":" + jsonString(metadata[$0]!) }
                .joined(separator: ",")
            json += "}"
            first = false
        }
        var offset = 0
        for (name, tensor) in tensors {
            func invalid(_ message: String) -> SafeTensorsError {
                SafeTensorsError(.invalidTensor, source: source, key: name, "cannot write tensor: " + message)
            }
            guard name != metadataKey else { throw invalid("'\(metadataKey)' is reserved for metadata") }
            guard seen.insert(name).inserted else { throw invalid("duplicate tensor name") }
            guard tensor.shape.allSatisfy({ $0 >= 0 }) else {
                throw invalid("negative dimension in shape \(describeShape(tensor.shape))")
            }
            let count = tensor.elementCount
            let stored = SafeTensorsDType(writing: tensor.dtype)
            let values = tensor.dtype == .f32 ? tensor.floats.count : tensor.ints.count
            guard values == count else {
                throw invalid("shape \(describeShape(tensor.shape)) holds \(count) elements but the tensor has \(values) \(tensor.dtype.rawValue) values")
            }
            if tensor.dtype == .i32, let bad = firstValueOutsideInt32(tensor.ints) {
                throw invalid("value \(bad) does not fit in I32")
            }
            let size = count * stored.byteSize
            if !first { json += "," }
            first = false
            json += jsonString(name) + ":{\"dtype\":\"\(stored.rawValue)\",\"shape\":["
                + tensor.shape.map(String.init).joined(separator: ",")
                + "],\"data_offsets\":[\(offset),\(offset + size)]}"
            offset += size
        }
        json += "}"
        var header = Array(json.utf8)
        // Pad with spaces so the data buffer starts 8-byte aligned, as the reference writer does.
        while header.count % 8 != 0 { header.append(UInt8(ascii: " ")) }
        return Plan(header: header, tensors: tensors, totalSize: 8 + header.count + offset)
    }

    /// Streams the file bytes to `sink` in a few large chunks.
    static func serialize(_ plan: Plan, to sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        var prefix = UInt64(plan.header.count).littleEndian
        try withUnsafeBytes(of: &prefix) { try sink($0) }
        try plan.header.withUnsafeBytes { try sink($0) }
        for (_, tensor) in plan.tensors {
            switch tensor.dtype {
            case .f32:
                #if _endian(little)
                try tensor.floats.withUnsafeBytes { try sink($0) }
                #else
                try streamChunks(tensor.floats, as: UInt32.self, to: sink) { src, dst, n in
                    for i in 0..<n { dst[i] = src[i].bitPattern.littleEndian }
                }
                #endif
            case .i64:
                #if _endian(little)
                try tensor.ints.withUnsafeBytes { try sink($0) }
                #else
                try streamChunks(tensor.ints, as: Int64.self, to: sink) { src, dst, n in
                    for i in 0..<n { dst[i] = src[i].littleEndian }
                }
                #endif
            case .i32:
                try streamChunks(tensor.ints, as: Int32.self, to: sink) { src, dst, n in
                    var (p, q, end) = (src, dst, src + n)
                    while p < end { q.pointee = Int32(truncatingIfNeeded: p.pointee).littleEndian; p += 1; q += 1 }
                }
            }
        }
    }

    /// Converts `values` chunk by chunk into bounded scratch memory with `convert(src, dst, n)`
    /// (a concrete pointer loop) and passes each converted chunk's bytes to `sink`.
    private static func streamChunks<S, D>(_ values: [S], as: D.Type, to sink: (UnsafeRawBufferPointer) throws -> Void,
                                           _ convert: (UnsafePointer<S>, UnsafeMutablePointer<D>, Int) -> Void) throws {
        let chunk = Swift.min(values.count, 1 << 16)
        guard chunk > 0 else { return }
        let scratch = UnsafeMutablePointer<D>.allocate(capacity: chunk)
        defer { scratch.deallocate() }
        try values.withUnsafeBufferPointer { source in
            var done = 0
            while done < source.count {
                let n = Swift.min(chunk, source.count - done)
                convert(source.baseAddress! + done, scratch, n)
                try sink(UnsafeRawBufferPointer(start: scratch, count: n * MemoryLayout<D>.stride))
                done += n
            }
        }
    }

    /// A JSON string literal with the mandatory escapes (non-ASCII is emitted as raw UTF-8).
    private static func jsonString(_ string: String) -> String {
        var out = "\""
        for scalar in string.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

/// The C `write(2)`, named so it is not shadowed by `SafeTensors.write`.
private func posixWrite(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int {
    write(fd, buffer, count)
}
