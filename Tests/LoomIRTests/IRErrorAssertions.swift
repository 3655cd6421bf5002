import XCTest
@testable import LoomIR

/// Asserts that `body` throws an `IRError` whose message contains every fragment; what `body`
/// returned instead is shown when it does not throw.
func assertThrowsIRError<T>(_ body: () throws -> T, mentioning fragments: [String],
                            file: StaticString = #filePath, line: UInt = #line) {
    do {
        let result = try body()
        XCTFail("no error thrown; got \(result)", file: file, line: line)
    } catch let error as IRError {
        for fragment in fragments {
            XCTAssertTrue(error.message.contains(fragment), "'\(error.message)' lacks '\(fragment)'",
                          file: file, line: line)
        }
    } catch {
        XCTFail("unexpected error \(error)", file: file, line: line)
    }
}
