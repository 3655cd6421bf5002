import Foundation
import LoomData
@testable import LoomTraining
import LoomTestSupport
import XCTest

/// `loss.csv` and the checkpoint agree: the log is replaced whole (no temporary file left), and a
/// resumed run cuts it back to the checkpoint's step.
final class LossLogTests: XCTestCase {
    func entry(_ step: Int) -> Trainer.StepLog {
        Trainer.StepLog(step: step, loss: Float(step), lossFinal: 1, lossInter: nil, gradNorm: 0, learningRate: 1e-4)
    }

    func testFlushReplacesTheLogWholeAndResumeCutsItBack() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("loom-losslog-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("loss.csv").path
        let log = try LossLog(path: path, keepingStepsThrough: 0)
        for step in 1...5 { log.append(entry(step)) }
        try log.flush()
        let rows = { try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n") }
        XCTAssertEqual(try rows().count, 6)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), ["loss.csv"])
        // The checkpoint was at step 3: a resumed run keeps rows 1…3 only.
        _ = try LossLog(path: path, keepingStepsThrough: 3)
        XCTAssertEqual(try rows().map { String($0.split(separator: ",")[0]) }, ["step", "1", "2", "3"])
    }

    /// A log that cannot be read (not UTF-8) stops the resume and is left as it is: resuming must
    /// not take it for an empty log and write a new one over it.
    func testAnUnreadableLogStopsTheResumeAndIsKept() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("loom-losslog-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("loss.csv").path
        let bytes = Data("step,loss\n1,0.5\n".utf8) + Data([0xFF, 0xFE, 0x80])
        try bytes.write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try LossLog(path: path, keepingStepsThrough: 1)) {
            XCTAssertTrue("\($0)".contains("cannot read the loss log \(path)"), "\($0)")
        }
        XCTAssertEqual(FileManager.default.contents(atPath: path), bytes)
    }
}
