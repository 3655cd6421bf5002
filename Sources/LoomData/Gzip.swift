import CSystemZlib
import Foundation
import LoomRuntime

/// Gzip/zlib (de)compression over the system zlib.
///
/// Decompression auto-detects gzip and zlib headers (windowBits 15 + 32) and accepts files made
/// of several concatenated gzip members (as `cat a.gz b.gz` produces); bytes after the last
/// member that do not start another gzip member are ignored, as `gunzip` does. Corrupt or
/// truncated input throws a `DiffusionError` naming the source.
public enum Gzip {
    /// True when `bytes` start with the gzip magic number 0x1f 0x8b.
    public static func isGzip<C: Collection>(_ bytes: C) -> Bool where C.Element == UInt8 {
        var iterator = bytes.makeIterator()
        return iterator.next() == 0x1f && iterator.next() == 0x8b
    }

    /// Decompresses a whole gzip (or zlib) stream held in memory. `source` names the data in
    /// errors. With `limit`, stops once `limit` bytes have been produced (the result may then
    /// be a prefix of the full output and the rest of the stream is not checked).
    public static func decompress(_ bytes: [UInt8], source: String = "<memory>", limit: Int? = nil) throws -> [UInt8] {
        let inflater = try GzipInflater(compressed: bytes, source: source)
        return try inflater.read(upTo: limit ?? Int.max)
    }

    /// Reads and decompresses the gzip file at `path`.
    public static func decompress(path: String, limit: Int? = nil) throws -> [UInt8] {
        try decompress(readFileBytes(path: path, what: "gzip file"), source: path, limit: limit)
    }

    /// Compresses `bytes` into a single gzip member (deflate, windowBits 31) at `level` (0–9).
    public static func compress(_ bytes: [UInt8], level: Int32 = 6) throws -> [UInt8] {
        let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        stream.initialize(to: z_stream())
        defer { stream.deinitialize(count: 1); stream.deallocate() }
        let initStatus = deflateInit2_(stream, level, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY,
                                       ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
        guard initStatus == Z_OK else {
            throw DiffusionError("gzip: deflateInit2 failed with zlib status \(initStatus)")
        }
        defer { deflateEnd(stream) }
        let bound = Int(deflateBound(stream, uLong(bytes.count))) + 64
        var output = [UInt8](repeating: 0, count: bound)
        var input = bytes
        let status: Int32 = input.withUnsafeMutableBufferPointer { src in
            output.withUnsafeMutableBufferPointer { dst in
                stream.pointee.next_in = src.baseAddress
                stream.pointee.avail_in = uInt(src.count)
                stream.pointee.next_out = dst.baseAddress
                stream.pointee.avail_out = uInt(dst.count)
                return deflate(stream, Z_FINISH)
            }
        }
        guard status == Z_STREAM_END else {
            throw DiffusionError("gzip: deflate did not finish (zlib status \(status)\(zlibMessage(stream)))")
        }
        output.removeSubrange(Int(stream.pointee.total_out)...)
        return output
    }
}

/// Incremental gzip/zlib decompression of an in-memory compressed buffer, so that callers can
/// inflate only the prefix they need (e.g. the first images of an IDX file).
public final class GzipInflater {
    /// The name used in error messages (usually the file path).
    public let source: String
    /// Decompressed bytes produced so far.
    public private(set) var producedCount = 0
    /// True once the last gzip member has ended.
    public private(set) var finished = false

    private let compressed: [UInt8]
    private var consumed = 0
    private let stream: UnsafeMutablePointer<z_stream>
    private var initialized = false

    /// Prepares to inflate `compressed`; `source` names the data in errors.
    public init(compressed: [UInt8], source: String) throws {
        self.compressed = compressed
        self.source = source
        // zlib keeps a back pointer to the z_stream, so it must not move: allocate it on the heap.
        stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        stream.initialize(to: z_stream())
        let status = inflateInit2_(stream, 47, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
        guard status == Z_OK else {
            stream.deinitialize(count: 1)
            stream.deallocate()
            throw DiffusionError("gzip data '\(source)': inflateInit2 failed with zlib status \(status)")
        }
        initialized = true
    }

    deinit {
        if initialized { inflateEnd(stream) }
        stream.deinitialize(count: 1)
        stream.deallocate()
    }

    /// Returns the next up to `count` decompressed bytes; fewer only when the stream has ended.
    /// Throws on corrupt data and on input that ends before the stream's end marker.
    public func read(upTo count: Int) throws -> [UInt8] {
        var output: [UInt8] = []
        guard count > 0 else { return output }
        // Inflate into a scratch buffer and append each piece with a bulk copy.
        let chunk = Swift.min(count, 1 << 20)
        let scratch = UnsafeMutablePointer<UInt8>.allocate(capacity: chunk)
        defer { scratch.deallocate() }
        while output.count < count && !finished {
            let want = Swift.min(chunk, count - output.count)
            let produced = try inflateChunk(into: scratch, capacity: want)
            output.append(contentsOf: UnsafeBufferPointer(start: scratch, count: produced))
        }
        return output
    }

    /// Reads exactly `count` bytes, or throws naming `what` with expected versus found counts.
    public func read(exactly count: Int, what: String) throws -> [UInt8] {
        let before = producedCount
        let bytes = try read(upTo: count)
        guard bytes.count == count else {
            throw DiffusionError("gzip file '\(source)': truncated \(what): expected \(count) bytes at "
                                 + "decompressed offset \(before), the data ends after \(bytes.count)")
        }
        return bytes
    }

    /// Runs inflate until `capacity` bytes are written at `dst` or the stream ends.
    private func inflateChunk(into dst: UnsafeMutablePointer<UInt8>, capacity: Int) throws -> Int {
        var produced = 0
        try compressed.withUnsafeBufferPointer { src in
            while produced < capacity && !finished {
                stream.pointee.next_in = UnsafeMutablePointer(mutating: src.baseAddress.map { $0 + consumed })
                stream.pointee.avail_in = uInt(src.count - consumed)
                stream.pointee.next_out = dst + produced
                stream.pointee.avail_out = uInt(capacity - produced)
                let inBefore = src.count - consumed
                let outBefore = capacity - produced
                let status = inflate(stream, Z_NO_FLUSH)
                let usedIn = inBefore - Int(stream.pointee.avail_in)
                let madeOut = outBefore - Int(stream.pointee.avail_out)
                consumed += usedIn
                produced += madeOut
                producedCount += madeOut
                switch status {
                case Z_OK:
                    continue
                case Z_STREAM_END:
                    // Another gzip member may follow (concatenated .gz files).
                    if consumed + 1 < src.count && src[consumed] == 0x1f && src[consumed + 1] == 0x8b {
                        let reset = inflateReset(stream)
                        guard reset == Z_OK else {
                            throw DiffusionError("gzip file '\(source)': inflateReset failed with zlib status \(reset)")
                        }
                    } else {
                        finished = true
                    }
                case Z_BUF_ERROR:
                    // No progress possible: inflate wants more input but there is none.
                    throw DiffusionError("gzip file '\(source)': truncated compressed data: all \(src.count) "
                                         + "input bytes were consumed (\(producedCount) bytes decompressed) "
                                         + "without reaching the end of the gzip stream")
                case Z_NEED_DICT:
                    throw DiffusionError("gzip file '\(source)': corrupt data: the stream needs a preset dictionary")
                case Z_DATA_ERROR:
                    throw DiffusionError("gzip file '\(source)': corrupt compressed data at input byte \(consumed)"
                                         + " (after \(producedCount) decompressed bytes)\(zlibMessage(stream))")
                case Z_MEM_ERROR:
                    throw DiffusionError("gzip file '\(source)': out of memory while decompressing")
                default:
                    throw DiffusionError("gzip file '\(source)': inflate failed with zlib status \(status)"
                                         + zlibMessage(stream))
                }
            }
        }
        return produced
    }
}

/// ": <zlib's message>" when zlib set one, else "".
private func zlibMessage(_ stream: UnsafeMutablePointer<z_stream>) -> String {
    guard let message = stream.pointee.msg else { return "" }
    return ": " + String(cString: message)
}
