import Foundation
import LoomIR
@testable import LoomRuntime
import XCTest

/// A scratch folder per test and byte-level builders and error assertions for the safetensors tests.
class SafeTensorsTestCase: XCTestCase {
    var scratch: URL!

    override func setUpWithError() throws {
        scratch = FileManager.default.temporaryDirectory
            .appendingPathComponent("loom-safetensors-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: scratch)
    }

    static let fixtures = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures")

    /// Builds raw file bytes: length prefix + header text (used verbatim) + data.
    func file(_ header: String, data: [UInt8] = []) -> [UInt8] {
        let headerBytes = Array(header.utf8)
        return rawFile(headerBytes, data: data)
    }

    func rawFile(_ header: [UInt8], data: [UInt8] = [], announcedLength: UInt64? = nil) -> [UInt8] {
        var prefix = (announcedLength ?? UInt64(header.count)).littleEndian
        return withUnsafeBytes(of: &prefix) { Array($0) } + header + data
    }

    func bytes<T>(_ values: [T]) -> [UInt8] { values.withUnsafeBytes { Array($0) } }

    /// Asserts that parsing `data` throws a `SafeTensorsError` of `kind` whose description contains every fragment.
    func assertFails(_ data: [UInt8], _ kind: SafeTensorsError.Kind, _ fragments: [String],
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

    func assertError(_ error: Error, _ kind: SafeTensorsError.Kind, _ fragments: [String],
                             file: StaticString = #filePath, line: UInt = #line) {
        guard let error = error as? SafeTensorsError else {
            return XCTFail("unexpected error type: \(error)", file: file, line: line)
        }
        XCTAssertEqual(error.kind, kind, "\(error)", file: file, line: line)
        for fragment in fragments {
            XCTAssertTrue(error.description.contains(fragment), "'\(fragment)' not in: \(error)", file: file, line: line)
        }
    }

    let f32Entry = #""w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}"#
}
