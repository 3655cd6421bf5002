import Foundation
import LoomData
import LoomGraphs
import LoomIR
import LoomRuntime
import XCTest

/// A test case with a fresh temporary folder per test and an assertion for `DiffusionError` messages.
open class TemporaryDirectoryTestCase: XCTestCase {
    public var directory = ""

    /// Prefix of the folder's name, so leftovers are recognisable.
    open var directoryPrefix: String { "loom-tests-" }

    override open func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.path + "/" + directoryPrefix + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    override open func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Asserts that `body` throws a `DiffusionError` whose message contains every string of `parts`.
    public func assertError(_ parts: [String], file: StaticString = #filePath, line: UInt = #line,
                            _ body: () throws -> Void) {
        assertThrows(DiffusionError.self, mentioning: parts, file: file, line: line, body)
    }
}
