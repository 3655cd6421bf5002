import Foundation
import LoomIR
@testable import LoomRuntime
import XCTest

final class SafeTensorsTests: XCTestCase {
    // MARK: - Helpers

    private var scratch: URL!

    override func setUpWithError() throws {
        scratch = FileManager.default.temporaryDirectory
            .appendingPathComponent("loom-safetensors-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: scratch)
    }

    private static let fixtures = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures")

    /// Builds raw file bytes: length prefix + header text (used verbatim) + data.
    private func file(_ header: String, data: [UInt8] = []) -> [UInt8] {
        let headerBytes = Array(header.utf8)
        return rawFile(headerBytes, data: data)
    }

    private func rawFile(_ header: [UInt8], data: [UInt8] = [], announcedLength: UInt64? = nil) -> [UInt8] {
        var prefix = (announcedLength ?? UInt64(header.count)).littleEndian
        return withUnsafeBytes(of: &prefix) { Array($0) } + header + data
    }

    private func bytes<T>(_ values: [T]) -> [UInt8] { values.withUnsafeBytes { Array($0) } }

    /// Asserts that parsing `data` throws a `SafeTensorsError` of `kind` whose description contains every fragment.
    private func assertFails(_ data: [UInt8], _ kind: SafeTensorsError.Kind, _ fragments: [String],
                             file: StaticString = #filePath, line: UInt = #line) {
        do {
            let result = try SafeTensors.read(data: data, source: "bad.safetensors")
            XCTFail("expected \(kind) error, read \(result.order)", file: file, line: line)
        } catch let error as SafeTensorsError {
            assertError(error, kind, ["bad.safetensors"] + fragments, file: file, line: line)
        } catch {
            XCTFail("unexpected error type: \(error)", file: file, line: line)
        }
    }

    private func assertError(_ error: Error, _ kind: SafeTensorsError.Kind, _ fragments: [String],
                             file: StaticString = #filePath, line: UInt = #line) {
        guard let error = error as? SafeTensorsError else {
            return XCTFail("unexpected error type: \(error)", file: file, line: line)
        }
        XCTAssertEqual(error.kind, kind, "\(error)", file: file, line: line)
        for fragment in fragments {
            XCTAssertTrue(error.description.contains(fragment), "'\(fragment)' not in: \(error)", file: file, line: line)
        }
    }

    private let f32Entry = #""w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}"#

    // MARK: - Round trip

    func testRoundTripThroughFile() throws {
        let weight = HostTensor(shape: [2, 3], floats: [1, -2.5, 3, .infinity, -0.0, 1e-30])
        let labels = HostTensor(shape: [4], ints: [0, -1, Int64.max, Int64.min])
        let loss = HostTensor.scalar(0.125)
        let small = HostTensor(shape: [3], ints: [7, -8, Int64(Int32.max)], dtype: .i32)
        let empty = HostTensor(shape: [0, 5], floats: [])
        let tensors = [("weight", weight), ("y", labels), ("loss", loss), ("idx", small), ("empty", empty),
                       ("odd \"name\"\n\u{1}é", HostTensor.scalar(2))]
        let metadata = ["config": #"{"depth": 2, "name": "tiny"}"#, "seed": "7", "unicode": "ünï\\\"\n"]
        let path = scratch.appendingPathComponent("round.safetensors").path

        try SafeTensors.write(tensors, metadata: metadata, to: path)
        let loaded = try SafeTensors.read(path: path)

        XCTAssertEqual(loaded.order, tensors.map(\.0))
        XCTAssertEqual(loaded.metadata, metadata)
        XCTAssertEqual(loaded.source, path)
        XCTAssertTrue(loaded.notes.isEmpty)
        for (name, tensor) in tensors {
            XCTAssertEqual(loaded.tensors[name], tensor, name)
        }
        XCTAssertEqual(loaded.tensors["weight"]!.floats[4].sign, .minus)
        XCTAssertEqual(loaded.storedDTypes["idx"], .I32)
        XCTAssertEqual(loaded.storedDTypes["y"], .I64)
        XCTAssertEqual(loaded.tensors["loss"]!.shape, [])

        // encode produces exactly the bytes that were written, and they parse the same way.
        let encoded = SafeTensors.encode(tensors, metadata: metadata)
        XCTAssertEqual(encoded, Array(try Data(contentsOf: URL(fileURLWithPath: path))))
        XCTAssertEqual(try SafeTensors.read(data: encoded, source: "mem").tensors, loaded.tensors)
        // The data buffer starts 8-byte aligned.
        let headerLength = encoded[0..<8].enumerated().reduce(0) { $0 | (Int($1.element) << (8 * $1.offset)) }
        XCTAssertEqual((8 + headerLength) % 8, 0)

        // orderedTensors feeds straight back into the writer.
        XCTAssertEqual(SafeTensors.encode(loaded.orderedTensors, metadata: loaded.metadata), encoded)
    }

    func testEncodeWithoutMetadataOmitsMetadataKey() throws {
        let encoded = SafeTensors.encode([("a", .scalar(1))], metadata: [:])
        XCTAssertFalse(String(decoding: encoded, as: UTF8.self).contains("__metadata__"))
        let loaded = try SafeTensors.read(data: encoded, source: "mem")
        XCTAssertEqual(loaded.metadata, [:])
        XCTAssertEqual(loaded.tensors["a"], .scalar(1))
    }

    // MARK: - Golden fixture

    func testReadsGoldenFixture() throws {
        let path = Self.fixtures.appendingPathComponent("sit_ig_tiny.safetensors").path
        let loaded = try SafeTensors.read(path: path)
        XCTAssertEqual(loaded.tensors["param.blocks.0.attn.qkv.weight"]?.type, TensorType(.f32, [192, 64]))
        XCTAssertEqual(loaded.tensors["y"]?.type, TensorType(.i64, [3]))
        XCTAssertEqual(loaded.tensors["loss"]?.type, TensorType(.f32, []))
        XCTAssertEqual(loaded.tensors["loss"]?.floats.count, 1)
        XCTAssertNotNil(loaded.metadata["config"])
        XCTAssertEqual(Set(loaded.order), Set(loaded.tensors.keys))
        XCTAssertEqual(loaded.order.count, loaded.tensors.count)

        let qkv = try loaded.tensor("param.blocks.0.attn.qkv.weight", expected: TensorType(.f32, [192, 64]))
        XCTAssertTrue(qkv.floats.allSatisfy(\.isFinite))
        XCTAssertTrue(qkv.floats.contains { $0 != 0 })
        XCTAssertEqual(try loaded.tensor("y", expected: TensorType(.i64, [3])).ints.count, 3)

        // Re-encoding the fixture and reading it back preserves every tensor.
        let again = try SafeTensors.read(data: SafeTensors.encode(loaded.orderedTensors, metadata: loaded.metadata),
                                         source: "re-encoded")
        XCTAssertEqual(again.tensors, loaded.tensors)
        XCTAssertEqual(again.metadata, loaded.metadata)
    }

    // MARK: - Other dtypes and layout details

    func testReadsF64F16BF16AndI32() throws {
        let doubles: [Double] = [1.5, -2, 1e-3]
        let halves: [UInt16] = [0x3C00, 0xC000, 0x0001, 0x7C00, 0x3555, 0x8000]  // 1, -2, 2^-24, inf, ~1/3, -0
        let brains: [UInt16] = [0x3F80, 0xC0A0, 0x7F80]  // 1, -5, inf
        let narrow: [Int32] = [-3, 2_000_000_000]
        var data = bytes(doubles)
        let f16Begin = data.count; data += bytes(halves)
        let bf16Begin = data.count; data += bytes(brains)
        let i32Begin = data.count; data += bytes(narrow)
        let header = """
        {"d": {"dtype": "F64", "shape": [3], "data_offsets": [0, 24]},
         "h": {"dtype": "F16", "shape": [2, 3], "data_offsets": [\(f16Begin), \(bf16Begin)]},
         "b": {"dtype": "BF16", "shape": [3], "data_offsets": [\(bf16Begin), \(i32Begin)]},
         "i": {"dtype": "I32", "shape": [2], "data_offsets": [\(i32Begin), \(data.count)]}}
        """
        let loaded = try SafeTensors.read(data: file(header, data: data), source: "mixed")
        XCTAssertEqual(loaded.order, ["d", "h", "b", "i"])
        XCTAssertEqual(loaded.tensors["d"], HostTensor(shape: [3], floats: doubles.map(Float.init)))
        let h = loaded.tensors["h"]!
        XCTAssertEqual(h.shape, [2, 3])
        XCTAssertEqual(Array(h.floats[0..<4]), [1, -2, Float(sign: .plus, exponent: -24, significand: 1), .infinity])
        XCTAssertEqual(h.floats[4], 1.0 / 3.0, accuracy: 1e-3)
        XCTAssertEqual(h.floats[5], 0)
        XCTAssertEqual(h.floats[5].sign, .minus)
        XCTAssertEqual(loaded.tensors["b"]?.floats, [1, -5, .infinity])
        XCTAssertEqual(loaded.tensors["i"], HostTensor(shape: [2], ints: [-3, 2_000_000_000], dtype: .i32))
        XCTAssertEqual(loaded.storedDTypes["d"], .F64)
        XCTAssertEqual(loaded.storedDTypes["h"], .F16)
        XCTAssertEqual(loaded.notes.count, 1)
        XCTAssertTrue(loaded.notes[0].contains("F64"), loaded.notes[0])
    }

    func testHalfConversionMatchesFloat16() {
        #if arch(x86_64) || arch(arm64)
        for bits in stride(from: 0, to: 65536, by: 1) {
            let expected = Float(Float16(bitPattern: UInt16(bits)))
            let got = SafeTensors.halfToFloat(UInt16(bits))
            if expected.isNaN {
                XCTAssertTrue(got.isNaN)
            } else if got.bitPattern != expected.bitPattern {
                return XCTFail("half 0x\(String(bits, radix: 16)): got \(got), expected \(expected)")
            }
        }
        #endif
    }

    func testPaddedHeaderAndUnalignedData() throws {
        // Header of odd length (data starts unaligned), trailing-space padding, a hole before the data.
        let header = #"{"w":{"dtype":"F32","shape":[2],"data_offsets":[1,9]}}"# + "   "
        XCTAssertNotEqual(Array(header.utf8).count % 4, 0)
        let data: [UInt8] = [0xAA] + bytes([Float(3.5), -1])
        let loaded = try SafeTensors.read(data: file(header, data: data), source: "padded")
        XCTAssertEqual(loaded.tensors["w"]?.floats, [3.5, -1])
    }

    func testEmptyHeaderObjectIsAnEmptyFile() throws {
        let loaded = try SafeTensors.read(data: file("{}"), source: "empty")
        XCTAssertTrue(loaded.tensors.isEmpty)
        XCTAssertTrue(loaded.order.isEmpty)
    }

    // MARK: - Malformed files

    func testFileNotFound() {
        let path = scratch.appendingPathComponent("nope.safetensors").path
        XCTAssertThrowsError(try SafeTensors.read(path: path)) {
            assertError($0, .fileNotFound, ["not found", "nope.safetensors"])
        }
    }

    func testDirectoryIsUnreadable() {
        XCTAssertThrowsError(try SafeTensors.read(path: scratch.path)) {
            assertError($0, .unreadable, ["unreadable", "directory", scratch.lastPathComponent])
        }
    }

    func testFileShorterThanEightBytes() throws {
        assertFails([1, 2, 3], .tooShort, ["too short", "3 bytes"])
        let path = scratch.appendingPathComponent("short.safetensors")
        try Data([0, 0]).write(to: path)
        XCTAssertThrowsError(try SafeTensors.read(path: path.path)) {
            assertError($0, .tooShort, ["short.safetensors", "too short"])
        }
    }

    func testTruncatedHeader() {
        assertFails(rawFile(Array("{}".utf8), announcedLength: 100), .truncatedHeader, ["truncated", "100", "2 bytes"])
        assertFails(rawFile([], announcedLength: UInt64.max), .truncatedHeader, ["truncated"])
    }

    func testHeaderNotUTF8() {
        assertFails(rawFile([0x7B, 0xFF, 0xFE, 0x7D]), .invalidHeader, ["UTF-8"])
    }

    func testHeaderNotJSON() {
        assertFails(file(#"{"w": {"dtype": "F32",}"#), .invalidHeader, ["not valid JSON"])
        assertFails(file(""), .invalidHeader, ["not valid JSON"])
    }

    func testHeaderNotAnObject() {
        assertFails(file("[1, 2]"), .invalidHeader, ["not a JSON object", "array"])
    }

    func testEntryMissingFields() {
        assertFails(file(#"{"w": {"shape": [2], "data_offsets": [0, 8]}}"#), .invalidEntry, ["'w'", "missing", "dtype"])
        assertFails(file(#"{"w": {"dtype": "F32", "data_offsets": [0, 8]}}"#), .invalidEntry, ["'w'", "missing", "shape"])
        assertFails(file(#"{"w": {"dtype": "F32", "shape": [2]}}"#), .invalidEntry, ["'w'", "missing", "data_offsets"])
    }

    func testEntryWithWrongJSONTypes() {
        assertFails(file(#"{"w": [1, 2]}"#), .invalidEntry, ["'w'", "object", "array"])
        assertFails(file(#"{"w": {"dtype": 32, "shape": [2], "data_offsets": [0, 8]}}"#),
                    .invalidEntry, ["'w'", "dtype", "expected string", "integer"])
        assertFails(file(#"{"w": {"dtype": "F32", "shape": "2", "data_offsets": [0, 8]}}"#),
                    .invalidEntry, ["'w'", "shape", "string"])
        assertFails(file(#"{"w": {"dtype": "F32", "shape": [2.0], "data_offsets": [0, 8]}}"#),
                    .invalidEntry, ["'w'", "shape", "expected integer"])
        assertFails(file(#"{"w": {"dtype": "F32", "shape": [true], "data_offsets": [0, 8]}}"#),
                    .invalidEntry, ["'w'", "shape", "boolean"])
        assertFails(file(#"{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8, 16]}}"#),
                    .invalidEntry, ["'w'", "data_offsets", "2 integers"])
        assertFails(file(#"{"w": {"dtype": "F32", "shape": [2], "data_offsets": null}}"#),
                    .invalidEntry, ["'w'", "data_offsets", "null"])
        assertFails(file(#"{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 18446744073709551615]}}"#),
                    .invalidEntry, ["'w'", "data_offsets"])
    }

    func testUnsupportedDType() {
        assertFails(file(#"{"flags": {"dtype": "BOOL", "shape": [2], "data_offsets": [0, 2]}}"#, data: [1, 0]),
                    .unsupportedDType, ["'flags'", "unsupported dtype", "BOOL"])
    }

    func testNegativeShapeDimension() {
        assertFails(file(#"{"w": {"dtype": "F32", "shape": [2, -3], "data_offsets": [0, 0]}}"#),
                    .invalidShape, ["'w'", "negative", "-3"])
    }

    func testOffsetsInconsistentWithShape() {
        assertFails(file(#"{"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}"#, data: Array(repeating: 0, count: 12)),
                    .inconsistentOffsets, ["'w'", "data_offsets", "[3]", "F32", "expected 12 bytes, found 8 bytes"])
        assertFails(file(#"{"w": {"dtype": "F32", "shape": [0], "data_offsets": [8, 0]}}"#, data: Array(repeating: 0, count: 8)),
                    .inconsistentOffsets, ["'w'", "[8, 0]"])
        assertFails(file(#"{"w": {"dtype": "F32", "shape": [4611686018427387904, 4], "data_offsets": [0, 8]}}"#),
                    .invalidShape, ["'w'", "too large"])
    }

    func testTruncatedData() {
        assertFails(file("{\(f32Entry)}", data: [0, 0, 0, 0, 0]), .truncatedData, ["'w'", "truncated", "5 bytes"])
    }

    func testOverlappingRanges() {
        let header = #"{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},"#
            + #" "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]},"#
            + #" "z": {"dtype": "F32", "shape": [0], "data_offsets": [4, 4]}}"#
        assertFails(file(header, data: Array(repeating: 0, count: 8)), .overlappingRanges, ["overlap", "'a'", "'b'"])
    }

    func testMetadataValuesMustBeStrings() {
        assertFails(file(#"{"__metadata__": {"seed": 7}, \#(f32Entry)}"#, data: Array(repeating: 0, count: 8)),
                    .invalidMetadata, ["__metadata__.seed", "strings", "integer"])
        assertFails(file(#"{"__metadata__": "x", \#(f32Entry)}"#, data: Array(repeating: 0, count: 8)),
                    .invalidMetadata, ["__metadata__", "object", "string"])
    }

    // MARK: - Expected-table checks

    private func sample() throws -> SafeTensorsFile {
        let tensors: [(String, HostTensor)] = [
            ("param.w", HostTensor(shape: [2, 3], floats: [1, 2, 3, 4, 5, 6])),
            ("y", HostTensor(shape: [2], ints: [1, 2])),
            ("idx", HostTensor(shape: [2], ints: [3, 4], dtype: .i32)),
            ("grad.w", HostTensor(shape: [2, 3], floats: [0, 0, 0, 0, 0, 0])),
        ]
        return try SafeTensors.read(data: SafeTensors.encode(tensors, metadata: [:]), source: "ckpt.safetensors")
    }

    func testTensorWithExpectedType() throws {
        let loaded = try sample()
        XCTAssertEqual(try loaded.tensor("param.w", expected: TensorType(.f32, [2, 3])).floats, [1, 2, 3, 4, 5, 6])
        let widened = try loaded.tensor("idx", expected: TensorType(.i64, [2]))
        XCTAssertEqual(widened, HostTensor(shape: [2], ints: [3, 4], dtype: .i64))
        XCTAssertEqual(try loaded.tensor("y", expected: TensorType(.i32, [2])).dtype, .i32)

        XCTAssertThrowsError(try loaded.tensor("param.v", expected: TensorType(.f32, [2, 3]))) {
            assertError($0, .missingKey, ["ckpt.safetensors", "'param.v'", "missing"])
        }
        XCTAssertThrowsError(try loaded.tensor("param.w", expected: TensorType(.f32, [3, 2]))) {
            assertError($0, .shapeMismatch, ["ckpt.safetensors", "'param.w'", "shape mismatch",
                                             "expected [3, 2], found [2, 3]"])
        }
        XCTAssertThrowsError(try loaded.tensor("y", expected: TensorType(.f32, [2]))) {
            assertError($0, .dtypeMismatch, ["'y'", "dtype", "expected f32, found I64"])
        }
        XCTAssertThrowsError(try loaded.tensor("param.w", expected: TensorType(.i64, [2, 3]))) {
            assertError($0, .dtypeMismatch, ["'param.w'", "expected i64, found F32"])
        }
        let big = try SafeTensors.read(data: SafeTensors.encode([("y", HostTensor(shape: [1], ints: [1 << 40]))], metadata: [:]),
                                       source: "big")
        XCTAssertThrowsError(try big.tensor("y", expected: TensorType(.i32, [1]))) {
            assertError($0, .dtypeMismatch, ["'y'", "does not fit", "i32"])
        }
    }

    func testValidateKeysReportsAllMissingAndUnexpected() throws {
        let loaded = try sample()
        XCTAssertNoThrow(try loaded.validateKeys(expected: ["param.w", "y", "idx", "grad.w"], ignoringPrefixes: []))
        XCTAssertNoThrow(try loaded.validateKeys(expected: ["param.w", "y", "idx"], ignoringPrefixes: ["grad."]))
        XCTAssertThrowsError(try loaded.validateKeys(expected: ["param.w", "param.b", "param.c"], ignoringPrefixes: ["grad."])) {
            assertError($0, .keyMismatch, ["ckpt.safetensors", "2 missing keys: param.b, param.c",
                                           "2 unexpected keys: idx, y"])
        }
    }

    func testValidateSpecsCollectsEveryProblem() throws {
        let loaded = try sample()
        let good = [TensorSpec(name: "param.w", type: TensorType(.f32, [2, 3])),
                    TensorSpec(name: "y", type: TensorType(.i64, [2])),
                    TensorSpec(name: "idx", type: TensorType(.i64, [2]))]
        XCTAssertEqual(try loaded.validate(good, ignoringPrefixes: ["grad."])["idx"]?.dtype, .i64)
        let bad = [TensorSpec(name: "param.w", type: TensorType(.f32, [6])),
                   TensorSpec(name: "y", type: TensorType(.f32, [2])),
                   TensorSpec(name: "param.b", type: TensorType(.f32, [3]))]
        XCTAssertThrowsError(try loaded.validate(bad, ignoringPrefixes: ["grad."])) {
            assertError($0, .keyMismatch, ["missing key: param.b", "unexpected key: idx",
                                           "'param.w'", "expected [6], found [2, 3]", "'y'", "expected f32, found I64"])
        }
    }

    // MARK: - Atomic writes

    private func directoryListing() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: scratch.path).sorted()
    }

    func testAtomicOverwriteLeavesNewFileAndNoTemporaries() throws {
        let path = scratch.appendingPathComponent("ckpt.safetensors").path
        try SafeTensors.write([("step", HostTensor(shape: [], ints: [1]))], metadata: ["v": "old"], to: path)
        try SafeTensors.write([("step", HostTensor(shape: [], ints: [2])), ("w", .scalar(3))],
                              metadata: ["v": "new"], to: path)
        let loaded = try SafeTensors.read(path: path)
        XCTAssertEqual(loaded.metadata["v"], "new")
        XCTAssertEqual(loaded.tensors["step"]?.ints, [2])
        XCTAssertEqual(try directoryListing(), ["ckpt.safetensors"])
    }

    func testFailedWriteKeepsOldFileAndNoTemporaries() throws {
        let path = scratch.appendingPathComponent("ckpt.safetensors").path
        try SafeTensors.write([("w", .scalar(1))], metadata: ["v": "old"], to: path)
        let before = try Data(contentsOf: URL(fileURLWithPath: path))

        XCTAssertThrowsError(try SafeTensors.write([("w", .scalar(2)), ("w", .scalar(3))], metadata: [:], to: path)) {
            assertError($0, .invalidTensor, ["ckpt.safetensors", "'w'", "duplicate"])
        }
        var inconsistent = HostTensor(shape: [2], floats: [1, 2])
        inconsistent.shape = [3]
        XCTAssertThrowsError(try SafeTensors.write([("bad", inconsistent)], metadata: [:], to: path)) {
            assertError($0, .invalidTensor, ["'bad'", "[3]", "3 elements", "2 f32 values"])
        }
        XCTAssertThrowsError(try SafeTensors.write([("i", HostTensor(shape: [1], ints: [1 << 40], dtype: .i32))],
                                                   metadata: [:], to: path)) {
            assertError($0, .invalidTensor, ["'i'", "does not fit in I32"])
        }
        // Renaming a file over a non-empty directory fails after the temporary file was written.
        let blocked = scratch.appendingPathComponent("blocked")
        try FileManager.default.createDirectory(at: blocked.appendingPathComponent("inner"), withIntermediateDirectories: true)
        XCTAssertThrowsError(try SafeTensors.write([("w", .scalar(1))], metadata: [:], to: blocked.path)) {
            assertError($0, .writeFailed, ["blocked", "write failed", "rename"])
        }

        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), before)
        XCTAssertEqual(try directoryListing(), ["blocked", "ckpt.safetensors"])
    }

    func testWriteIntoMissingDirectoryFails() {
        let path = scratch.appendingPathComponent("no/such/dir/x.safetensors").path
        XCTAssertThrowsError(try SafeTensors.write([("w", .scalar(1))], metadata: [:], to: path)) {
            assertError($0, .writeFailed, ["x.safetensors", "temporary file", "No such file"])
        }
    }
}
