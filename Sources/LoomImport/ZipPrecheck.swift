import Foundation
import LoomData

/// Checks a zip file's directory before ZIPFoundation reads it: every offset and size in the
/// end-of-central-directory records (zip64 included) and in each central-directory entry must lie
/// inside the file. ZIPFoundation converts such fields to `off_t` unchecked, so a hostile archive
/// with an offset of 2⁶³ or more would trap it (found by fuzzing); here it is an error naming the
/// file instead.
enum ZipPrecheck {
    static func check(path: String) throws {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw DiffusionError("cannot open \(path)") }
        defer { try? handle.close() }
        let size = UInt64((try? handle.seekToEnd()) ?? 0)
        func fail(_ what: String) -> DiffusionError { DiffusionError("\(path): damaged zip archive (\(what))") }
        func read(_ offset: UInt64, _ count: Int) throws -> [UInt8] {
            guard offset <= size, UInt64(count) <= size - offset else { throw fail("a record at \(offset) runs past the end") }
            try handle.seek(toOffset: offset)
            let data = try handle.read(upToCount: count) ?? Data()
            guard data.count == count else { throw fail("short read at \(offset)") }
            return [UInt8](data)
        }
        func u16(_ b: [UInt8], _ at: Int) -> UInt64 { UInt64(b[at]) | UInt64(b[at + 1]) << 8 }
        func u32(_ b: [UInt8], _ at: Int) -> UInt64 { u16(b, at) | u16(b, at + 2) << 16 }
        func u64(_ b: [UInt8], _ at: Int) -> UInt64 { u32(b, at) | u32(b, at + 4) << 32 }

        // End of central directory: the last record with its signature, within the comment limit.
        guard size >= 22 else { throw fail("shorter than an end-of-directory record") }
        let tailLength = Int(min(size, 22 + 65_535))
        let tail = try read(size - UInt64(tailLength), tailLength)
        guard let eocd = stride(from: tailLength - 22, through: 0, by: -1).first(where: {
            tail[$0] == 0x50 && tail[$0 + 1] == 0x4B && tail[$0 + 2] == 0x05 && tail[$0 + 3] == 0x06
        }) else { throw fail("no end-of-directory record") }
        var entries = u16(tail, eocd + 10), directorySize = u32(tail, eocd + 12), directoryOffset = u32(tail, eocd + 16)
        // A zip64 locator right before the record wins whenever it is there (as ZIPFoundation reads
        // it; PyTorch always writes one); it is required when a field holds the zip64 sentinel.
        let locatorAt = size - UInt64(tailLength) + UInt64(eocd)
        let locator = locatorAt >= 20 ? try read(locatorAt - 20, 20) : []
        if locator.count == 20, u32(locator, 0) == 0x0706_4B50 {
            let record = try read(u64(locator, 8), 56)
            guard u32(record, 0) == 0x0606_4B50 else { throw fail("no zip64 end-of-directory record where its locator points") }
            (entries, directorySize, directoryOffset) = (u64(record, 32), u64(record, 40), u64(record, 48))
        } else if entries == 0xFFFF || directorySize == 0xFFFF_FFFF || directoryOffset == 0xFFFF_FFFF {
            throw fail("no zip64 locator")
        }
        guard directoryOffset <= size, directorySize <= size - directoryOffset, entries <= directorySize / 46 else {
            throw fail("central directory of \(entries) entries at \(directoryOffset) (\(directorySize) bytes) in a \(size)-byte file")
        }
        let directory = try read(directoryOffset, Int(directorySize))
        var at = 0
        for index in 0..<Int(entries) {
            guard at + 46 <= directory.count, u32(directory, at) == 0x0201_4B50 else { throw fail("entry \(index) of the directory") }
            var compressed = u32(directory, at + 20), uncompressed = u32(directory, at + 24), offset = u32(directory, at + 42)
            let nameLength = Int(u16(directory, at + 28)), extraLength = Int(u16(directory, at + 30))
            let commentLength = Int(u16(directory, at + 32))
            let extraStart = at + 46 + nameLength, end = extraStart + extraLength + commentLength
            guard end <= directory.count else { throw fail("entry \(index) runs past the directory") }
            // Zip64 extra field: the 64-bit values of the fields set to 0xFFFFFFFF, in this order.
            var e = extraStart
            while e + 4 <= extraStart + extraLength {
                let id = u16(directory, e), length = Int(u16(directory, e + 2))
                guard e + 4 + length <= extraStart + extraLength else { throw fail("extra field of entry \(index)") }
                if id == 1 {
                    var field = e + 4
                    func next() throws -> UInt64 {
                        guard field + 8 <= e + 4 + length else { throw fail("zip64 field of entry \(index)") }
                        defer { field += 8 }
                        return u64(directory, field)
                    }
                    if uncompressed == 0xFFFF_FFFF { uncompressed = try next() }
                    if compressed == 0xFFFF_FFFF { compressed = try next() }
                    if offset == 0xFFFF_FFFF { offset = try next() }
                }
                e += 4 + length
            }
            guard offset < size, compressed <= size - offset, uncompressed < UInt64(Int64.max) else {
                throw fail("entry \(index): data at \(offset), \(compressed) bytes, in a \(size)-byte file")
            }
            at = end
        }
    }
}
