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

    /// Values that used to crash a study (an allocation of 8 TB, a division by a zero batch) or to
    /// surface only hours in (a bad second variant) are refused when the config is read.
    func testHostileConfigValuesAreRefusedUpFront() throws {
        let tiny = try ExperimentConfig.load(path: ExperimentRunnerTests.tinyConfigPath)
        let cases: [(String, (inout ExperimentConfig) -> Void, String)] = [
            ("samples", { $0.samples = 1_000_000_000_000 }, "samples must be in 4…10000000"),
            ("sampler steps", { $0.sampler.steps = 1_000_000_000_000 }, "sampler steps must be in 1…100000"),
            ("sampler batch", { $0.sampler.batch = 0 }, "sampler batch must be positive, got 0"),
            ("bootstrap", { $0.fidBootstrap = -1 }, "fidBootstrap must be in 0…10000"),
            ("classifier steps", { $0.classifierSteps = -1 }, "classifierSteps must be positive"),
            ("train limit", { $0.trainLimit = 0 }, "trainLimit must be positive"),
            ("threads", { $0.threads = 0 }, "threads must be in 1…"),
            ("second variant", { $0.training[1].lr = -1 }, "training variant 'ig': --lr must be a positive number"),
            ("warmup", { $0.training[0].warmup = -1 }, "training variant 'vanilla': --warmup must not be negative"),
            ("head", { $0.training[1].igLayer = 99 }, "training variant 'ig': invalid model configuration"),
            ("weight", { $0.rows[1].w = 1e308 }, "row 'IG w=2': w must be a finite number"),
            ("grids", { $0.rows[0].label = "vanilla!"; $0.rows[1].label = "vanilla?" },
             "rows 'vanilla!' and 'vanilla?' would write the same grid vanilla_.png"),
        ]
        for (name, mutate, message) in cases {
            var config = tiny
            mutate(&config)
            XCTAssertThrowsError(try config.validate(), name) {
                XCTAssertTrue("\($0)".contains(message), "\(name): \($0)")
            }
        }
        XCTAssertNoThrow(try tiny.validate())
        XCTAssertEqual(ExperimentRunner.fileName("../../etc/x"), "_._.._etc_x", "a grid is never a hidden file")
        XCTAssertEqual(ExperimentRunner.fileName("IG w=2"), "IG_w_2")
    }

    func testADamagedResultsFileStopsTheStudyAndIsKept() throws {
        var config = try ExperimentConfig.load(path: ExperimentRunnerTests.tinyConfigPath)
        config.out = directory + "/study"
        config.classifier = directory + "/classifier.safetensors"
        try FileManager.default.createDirectory(atPath: config.out, withIntermediateDirectories: true)
        let runner = ExperimentRunner(config: config, command: "damaged") { _ in }
        let damaged = "[{\"label\": \"vanilla\", \"seed\": 0"   // cut off mid-write by hand
        try damaged.write(toFile: runner.resultsJSONPath, atomically: true, encoding: .utf8)
        for (what, call) in [("run", { _ = try runner.run() }), ("status", { _ = try runner.status() }),
                          ("report", { _ = try runner.rewriteReport() })] as [(String, () throws -> Void)] {
            XCTAssertThrowsError(try call(), what) {
                XCTAssertTrue("\($0)".contains("\(runner.resultsJSONPath) is not a results file"), "\(what): \($0)")
            }
            XCTAssertEqual(try String(contentsOfFile: runner.resultsJSONPath, encoding: .utf8), damaged,
                           "\(what): the damaged file is left as it was")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: runner.checkpointPath("vanilla")), "nothing was trained")
    }
}
