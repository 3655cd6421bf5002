import Foundation
import LoomData
import LoomExperiments
import LoomTestSupport
import XCTest

/// A study's own files read back: a config or results file that cannot be read is a clear error
/// naming the file and the place in it, and a damaged results file is never replaced.
final class StudyFilesTests: TemporaryDirectoryTestCase {
    func testConfigErrorsNameThePlaceInTheFile() throws {
        let path = directory + "/study.json"
        var text = try String(contentsOfFile: ExperimentRunnerTests.tinyConfigPath, encoding: .utf8)
        text = text.replacingOccurrences(of: "\"guidance\": \"ig\"", with: "\"guidance\": \"sideways\"")
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try ExperimentConfig.load(path: path)) {
            XCTAssertTrue("\($0)".contains("experiment config '\(path)' is not valid"), "\($0)")
            XCTAssertTrue("\($0)".contains("at .rows[1].guidance"), "\($0)")
        }
        try "{\"out\": 5}".write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try ExperimentConfig.load(path: path)) {
            XCTAssertTrue("\($0)".contains("found number instead, at .out"), "\($0)")
        }
        try "{\"out\": \"x\"}".write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try ExperimentConfig.load(path: path)) {
            XCTAssertTrue("\($0)".contains("no 'classifier' at the top level"), "\($0)")
        }
    }

    func testADamagedResultsFileStopsTheStudyAndIsKept() throws {
        var config = try ExperimentConfig.load(path: ExperimentRunnerTests.tinyConfigPath)
        config.out = directory + "/study"
        config.classifier = directory + "/classifier.safetensors"
        try FileManager.default.createDirectory(atPath: config.out, withIntermediateDirectories: true)
        let runner = ExperimentRunner(config: config, command: "damaged") { _ in }
        let damaged = "[{\"label\": \"vanilla\", \"seed\": 0"   // cut off mid-write by hand
        try damaged.write(toFile: runner.resultsJSONPath, atomically: true, encoding: .utf8)
        for (what, call) in [("run", { _ = try runner.run() }), ("status", { _ = try runner.status() })] as [(String, () throws -> Void)] {
            XCTAssertThrowsError(try call(), what) {
                XCTAssertTrue("\($0)".contains("\(runner.resultsJSONPath) is not a results file"), "\(what): \($0)")
            }
            XCTAssertEqual(try String(contentsOfFile: runner.resultsJSONPath, encoding: .utf8), damaged,
                           "\(what): the damaged file is left as it was")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: runner.checkpointPath("vanilla")), "nothing was trained")
    }
}
