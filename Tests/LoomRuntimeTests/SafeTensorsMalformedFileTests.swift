import Foundation
import LoomIR
@testable import LoomRuntime
import XCTest

/// Every malformed safetensors file is refused with an error that names the file and the fault.
final class SafeTensorsMalformedFileTests: SafeTensorsTestCase {
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
}
