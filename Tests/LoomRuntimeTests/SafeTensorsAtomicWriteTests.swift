import Foundation
import LoomIR
@testable import LoomRuntime
import XCTest

/// Writes replace a file atomically and leave the old one whole when they fail.
final class SafeTensorsAtomicWriteTests: SafeTensorsTestCase {
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
