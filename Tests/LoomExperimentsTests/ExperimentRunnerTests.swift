import Foundation
import LoomData
import LoomDiffusion
import LoomEvaluation
import LoomExperiments
import LoomSampling
import LoomTestSupport
import LoomTraining
import XCTest

/// Runs Benchmarks/study/tiny-study.json end to end in a temporary folder.
final class ExperimentRunnerTests: TemporaryDirectoryTestCase {
    static var tinyConfigPath: String {
        RepositoryPaths.root.appendingPathComponent("Benchmarks/study/tiny-study.json").path
    }

    func testFullStudyConfigParses() throws {
        let path = Self.tinyConfigPath.replacingOccurrences(of: "tiny-study.json", with: "fashion-ig-study.json")
        let config = try ExperimentConfig.load(path: path)
        XCTAssertFalse(config.rows.isEmpty)
        XCTAssertTrue(Set(config.rows.map(\.training)).isSubset(of: Set(config.training.map(\.name))))
    }

    func testTinyStudyRunsEndToEndAndRerunsIdentically() throws {
        guard FileManager.default.fileExists(atPath: Dataset.fashionMNISTDefaultRoot) else {
            throw XCTSkip("Fashion-MNIST is not installed at \(Dataset.fashionMNISTDefaultRoot)")
        }
        var config = try ExperimentConfig.load(path: Self.tinyConfigPath)
        config.out = directory + "/study"
        config.classifier = directory + "/classifier.safetensors"
        var lines: [String] = []
        let runner = ExperimentRunner(config: config, command: "loom experiment tiny-study.json") { lines.append($0) }
        let first = try runner.run()
        XCTAssertEqual(first.map(\.label), config.rows.map(\.label))

        let markdown = try String(contentsOfFile: runner.resultsMarkdownPath, encoding: .utf8)
        for row in config.rows {
            XCTAssertTrue(markdown.contains("| \(row.label) | \(row.training) |"), "results.md lacks row \(row.label)")
            XCTAssertTrue(FileManager.default.fileExists(atPath: config.out + "/\(ExperimentRunner.fileName(row.label)).png"))
        }
        XCTAssertTrue(markdown.contains("loom experiment tiny-study.json"))
        for v in config.training {
            XCTAssertTrue(FileManager.default.fileExists(atPath: runner.checkpointPath(v.name)))
        }

        // Rerunning one row reuses the checkpoints and gives the same numbers.
        lines.removeAll()
        let rerunRunner = ExperimentRunner(config: config, command: "loom experiment tiny-study.json") { lines.append($0) }
        let label = config.rows[1].label
        let again = try rerunRunner.run(only: [label])
        XCTAssertTrue(lines.contains { $0.contains("reusing") }, "finished checkpoints should be reused")
        XCTAssertEqual(again.count, 1)
        XCTAssertEqual(again[0].report, first[1].report)
        print(markdown)
        let markdownAfter = try String(contentsOfFile: runner.resultsMarkdownPath, encoding: .utf8)
        for row in config.rows { XCTAssertTrue(markdownAfter.contains("| \(row.label) |")) }

        // More steps for a variant resume its checkpoint instead of starting over.
        var longer = config
        longer.training[0].steps += 5
        lines.removeAll()
        try ExperimentRunner(config: longer, command: "loom experiment tiny-study.json") { lines.append($0) }
            .run(only: [config.rows[0].label])
        XCTAssertTrue(lines.contains { $0.contains("resuming") && $0.contains("step \(config.training[0].steps)") }, "\(lines)")
        XCTAssertEqual(try CheckpointWeights.load(path: runner.checkpointPath(config.training[0].name), ema: true).step,
                       longer.training[0].steps)
    }

    func testUnknownVariantIsRejected() throws {
        var config = try ExperimentConfig.load(path: Self.tinyConfigPath)
        config.rows[0].training = "nope"
        assertError(["unknown training variant", "nope"]) { try config.validate() }
    }

    /// A variant name is a folder inside the output folder: names that would leave it are refused.
    func testVariantNamesStayInsideTheOutputFolder() throws {
        for bad in ["..", ".", ".hidden", "a/b", ""] {
            var config = try ExperimentConfig.load(path: Self.tinyConfigPath)
            let old = config.training[0].name
            config.training[0].name = bad
            for index in config.rows.indices where config.rows[index].training == old { config.rows[index].training = bad }
            assertError(["bad variant name"]) { try config.validate() }
        }
    }
}
