import XCTest

/// Asserts that `body` throws an `E` whose message (its description) contains every fragment;
/// `context` opens each failure message, and what `body` returned is shown when it does not throw.
public func assertThrows<E: Error & CustomStringConvertible, T>(
    _ type: E.Type, mentioning fragments: [String], _ context: String = "",
    file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> T) {
    let prefix = context.isEmpty ? "" : "\(context): "
    do {
        let result = try body()
        XCTFail("\(prefix)no error thrown; got \(result)", file: file, line: line)
    } catch let error as E {
        for fragment in fragments where !error.description.contains(fragment) {
            XCTFail("\(prefix)'\(error.description)' lacks '\(fragment)'", file: file, line: line)
        }
    } catch {
        XCTFail("\(prefix)unexpected error type \(Swift.type(of: error)): \(error)", file: file, line: line)
    }
}
