import Foundation
import LoomIR
@testable import LoomRuntime
import XCTest

/// Reading and writing safetensors files: round trips, the golden fixture, dtypes, expected-table checks.
final class SafeTensorsTests: SafeTensorsTestCase {
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
}
