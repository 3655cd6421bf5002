import Foundation
import LoomData
import LoomDiffusion
import LoomEvaluation
import LoomExperiments
import LoomRuntime
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

    /// Ctrl-C stops a study at the next safe point: inside a row's sampling (between batches) or
    /// before the next row, keeping every row recorded; the rerun does only what is left.
    func testCtrlCStopsAtTheNextSafePointAndKeepsRecordedRows() throws {
        guard FileManager.default.fileExists(atPath: Dataset.fashionMNISTDefaultRoot) else {
            throw XCTSkip("Fashion-MNIST is not installed at \(Dataset.fashionMNISTDefaultRoot)")
        }
        defer { Interruption.clear() }
        var config = try ExperimentConfig.load(path: Self.tinyConfigPath)
        config.out = directory + "/study"
        config.classifier = directory + "/classifier.safetensors"
        config.sampler.batch = 5  // four batches per row: progress lines after the first three
        func stopped(_ trigger: @escaping (String) -> Bool) -> (Interruption.Stopped?, [String]) {
            var lines: [String] = []
            let runner = ExperimentRunner(config: config, command: "tiny") { line in
                lines.append(line)
                if trigger(line) { Interruption.request() }
            }
            defer { Interruption.clear() }
            do {
                _ = try runner.run()
                return (nil, lines)
            } catch {
                return (error as? Interruption.Stopped, lines)
            }
        }
        // Before anything: no training starts.
        Interruption.request()
        let (early, _) = stopped { _ in false }
        XCTAssertTrue(early?.message.contains("before training 'vanilla', seed 0") == true, "\(String(describing: early))")
        XCTAssertFalse(FileManager.default.fileExists(atPath: config.out + "/vanilla/checkpoint.safetensors"))

        // Inside the first row, once its sampling has started: stopped at the batch boundary,
        // nothing recorded, no other row started.
        var rowsStarted = 0
        let (inRow, _) = stopped { line in
            if line.contains("images from") { rowsStarted += 1 }
            return line.contains("images from")
        }
        XCTAssertEqual(rowsStarted, 1)
        XCTAssertTrue(inRow?.message.contains("stopped in row vanilla, seed 0 (sampling stopped after 0 of 20 images)") == true,
                      "\(String(describing: inRow))")
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory + "/study/results.json"))

        // After the first row's scores: that row is recorded, the second not started.
        let (betweenRows, _) = stopped { $0.contains("FID") }
        XCTAssertTrue(betweenRows?.message.contains("before row IG w=2, seed 0; 1 rows recorded") == true,
                      "\(String(describing: betweenRows))")
        let recorded = try JSONDecoder().decode([ExperimentResult].self,
                                                from: Data(contentsOf: URL(fileURLWithPath: directory + "/study/results.json")))
        XCTAssertEqual(recorded.map(\.label), ["vanilla"])

        // The rerun keeps that row and does the other.
        let (none, lines) = stopped { _ in false }
        XCTAssertNil(none)
        XCTAssertTrue(lines.contains { $0.contains("row vanilla, seed 0: done before, kept") }, "\(lines)")
        XCTAssertTrue(lines.contains { $0.contains("row IG w=2, seed 0: 20 images") }, "\(lines)")
        XCTAssertEqual(lines.filter { $0.hasPrefix("  [IG w=2] ") && $0.contains("/20 images, ") }.count, 3, "\(lines)")
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

/// Seeds, statistics and resuming: a seconds-long study with two seeds, interrupted after one row
/// and resumed, gives the numbers of the uninterrupted study.
final class SeededStudyTests: TemporaryDirectoryTestCase {
    static func seededConfig(out: String, classifier: String) throws -> ExperimentConfig {
        var config = try ExperimentConfig.load(path: ExperimentRunnerTests.tinyConfigPath)
        config.out = out
        config.classifier = classifier
        config.seeds = [3, 4]
        config.comparisons = [.init(label: "IG vs vanilla", a: config.rows[1].label, b: config.rows[0].label)]
        config.secondClassifier = (classifier as NSString).deletingLastPathComponent + "/conv.safetensors"
        config.secondClassifierSteps = 20
        for i in config.training.indices { config.training[i].steps = 8 }
        return config
    }

    func testInterruptedStudyResumesToIdenticalNumbers() throws {
        guard FileManager.default.fileExists(atPath: Dataset.fashionMNISTDefaultRoot) else {
            throw XCTSkip("Fashion-MNIST is not installed at \(Dataset.fashionMNISTDefaultRoot)")
        }
        let classifier = directory + "/classifier.safetensors"
        let straight = try Self.seededConfig(out: directory + "/straight", classifier: classifier)
        let whole = try ExperimentRunner(config: straight, command: "loom experiment seeded.json") { _ in }.run()
        XCTAssertEqual(whole.count, straight.rows.count * 2)
        XCTAssertEqual(Set(whole.map(\.seed)), [3, 4])
        XCTAssertNotEqual(whole[0].report.fidFM, whole[straight.rows.count].report.fidFM, "the seed changes the run")

        // "Interrupted": only the first row ran; the rerun keeps it and does the rest.
        let resumedConfig = try Self.seededConfig(out: directory + "/resumed", classifier: classifier)
        var lines: [String] = []
        let runner = ExperimentRunner(config: resumedConfig, command: "loom experiment seeded.json") { lines.append($0) }
        XCTAssertEqual(try runner.run(only: [resumedConfig.rows[0].label]).count, 2)
        let rest = try runner.run()
        XCTAssertEqual(rest.count, (resumedConfig.rows.count - 1) * 2, "finished (row, seed) pairs are not run again")
        XCTAssertTrue(lines.contains { $0.contains("done before, kept") })
        let resumed = try JSONDecoder().decode([ExperimentResult].self,
                                               from: Data(contentsOf: URL(fileURLWithPath: runner.resultsJSONPath)))
        XCTAssertEqual(resumed.count, whole.count)
        for result in whole {
            let twin = try XCTUnwrap(resumed.first { $0.label == result.label && $0.seed == result.seed })
            XCTAssertEqual(twin.report, result.report, "\(result.label), seed \(result.seed)")
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: runner.checkpointPath(resumedConfig.training[0].name, seed: 4)))

        // In parts on "different machines": each part has its own checkpoint folder, the results
        // folder is shared (as the repository shares it); together they give the same numbers.
        var parted = try Self.seededConfig(out: directory + "/machine-a", classifier: classifier)
        parted.results = directory + "/shared-results"
        let partA = try ExperimentRunner(config: parted, command: "part a") { _ in }
            .run(variants: [parted.training[0].name], seeds: [4])
        XCTAssertEqual(partA.map(\.label), [parted.rows[0].label])
        XCTAssertEqual(partA.map(\.seed), [4])
        XCTAssertTrue(partA.allSatisfy { $0.machine?.contains("kernels") == true })
        var partial = try String(contentsOfFile: directory + "/shared-results/results.md", encoding: .utf8)
        XCTAssertTrue(partial.contains("1 of \(parted.rows.count * 2) (row, seed) results"), partial)
        parted.out = directory + "/machine-b"
        let partB = try ExperimentRunner(config: parted, command: "part b") { _ in }.run()
        XCTAssertEqual(partB.count, whole.count - 1, "the part recorded before is kept")
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory + "/machine-b/\(parted.training[0].name)/seed-4"),
                       "machine b does not retrain what machine a finished")
        let combined = try JSONDecoder().decode([ExperimentResult].self,
                                                from: Data(contentsOf: URL(fileURLWithPath: directory + "/shared-results/results.json")))
        for result in whole {
            let twin = try XCTUnwrap(combined.first { $0.label == result.label && $0.seed == result.seed })
            XCTAssertEqual(twin.report, result.report, "parts: \(result.label), seed \(result.seed)")
        }
        partial = try String(contentsOfFile: directory + "/shared-results/results.md", encoding: .utf8)
        XCTAssertFalse(partial.contains("Incomplete"), partial)
        XCTAssertThrowsError(try ExperimentRunner(config: parted, command: "bad") { _ in }.run(variants: ["nope"])) {
            XCTAssertTrue("\($0)".contains("no training variant 'nope'"), "\($0)")
        }
        XCTAssertThrowsError(try ExperimentRunner(config: parted, command: "bad") { _ in }.run(seeds: [9])) {
            XCTAssertTrue("\($0)".contains("seed 9 is not one of the study's seeds"), "\($0)")
        }
        let markdown = try String(contentsOfFile: runner.resultsMarkdownPath, encoding: .utf8)
        XCTAssertTrue(markdown.contains("Mean ± standard deviation over seeds"), markdown)
        XCTAssertTrue(markdown.contains("| IG vs vanilla |"), markdown)
        XCTAssertTrue(markdown.contains("FID, 2nd space") && markdown.contains("## Claims"), markdown)
        for result in whole {
            let second = try XCTUnwrap(result.secondReport, "\(result.label): scored in the second feature space")
            XCTAssertNotEqual(second.fidFM, result.report.fidFM)
            XCTAssertGreaterThan(try XCTUnwrap(result.report.fidStandardError), 0)
            XCTAssertGreaterThan(try XCTUnwrap(second.fidStandardError), 0)
        }
    }

    func testStatistics() {
        let (mean, sd) = StudyStatistics.meanAndDeviation([1, 2, 3, 4])
        XCTAssertEqual(mean, 2.5)
        XCTAssertEqual(sd, (5.0 / 3).squareRoot(), accuracy: 1e-12)
        let clear = StudyStatistics.pairedDifference([0: 1.0, 1: 1.2, 2: 0.9], [0: 2.0, 1: 2.1, 2: 2.2])!
        XCTAssertEqual(clear.mean, (-1.0 - 0.9 - 1.3) / 3, accuracy: 1e-12)
        XCTAssertLessThan(clear.high, 0)
        XCTAssertEqual(clear.verdict, "lower")
        let mixed = StudyStatistics.pairedDifference([0: 1.0, 1: 3.0], [0: 2.0, 1: 2.0])!
        XCTAssertEqual(mixed.verdict, "undecided")
        XCTAssertLessThanOrEqual(mixed.low, 0)
        XCTAssertGreaterThanOrEqual(mixed.high, 0)
        // Three differences of one sign but far apart: the bootstrap interval cannot reach past them
        // and excludes 0, the t interval (t₀.₉₇₅,₂ = 4.303) does not; no verdict.
        let scattered = StudyStatistics.pairedDifference([0: 1.9, 1: 0.0, 2: 1.95], [0: 2.0, 1: 2.0, 2: 2.0])!
        XCTAssertLessThan(scattered.high, 0)
        let spread = StudyStatistics.meanAndDeviation([-0.1, -2.0, -0.05]).sd
        XCTAssertEqual(scattered.tHigh, scattered.mean + 4.303 * spread / 3.0.squareRoot(), accuracy: 1e-9)
        XCTAssertGreaterThan(scattered.tHigh, 0)
        XCTAssertEqual(scattered.verdict, "undecided")
        XCTAssertLessThan(clear.tHigh, 0)
        XCTAssertEqual(StudyStatistics.tQuantile975(df: 2), 4.303)
        XCTAssertEqual(StudyStatistics.tQuantile975(df: 60), 2.000, accuracy: 2e-3)   // tables: 2.000
        XCTAssertEqual(StudyStatistics.tQuantile975(df: 120), 1.980, accuracy: 2e-3)  // tables: 1.980
        XCTAssertEqual(StudyStatistics.pairedDifference([0: 1], [0: 2])?.verdict, "undecided (one seed)")
        XCTAssertNil(StudyStatistics.pairedDifference([0: 1], [1: 2]))
    }
}

extension SeededStudyTests {
    /// The seeded study of the paper's claims parses and names only known rows and variants.
    func testSeededStudyConfigParses() throws {
        let path = RepositoryPaths.root.appendingPathComponent("Benchmarks/study/ig-study-seeds.json").path
        let config = try ExperimentConfig.load(path: path)
        XCTAssertEqual(config.studySeeds, [0, 1, 2])
        XCTAssertEqual(config.samples, 5000)
        XCTAssertEqual(config.comparisons?.count, 22)
        XCTAssertTrue(config.training.allSatisfy { $0.precision == .bf16 && ($0.steps >= 19000 || $0.name == "guide-short") })
    }
}
