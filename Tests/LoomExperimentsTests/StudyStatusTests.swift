import Foundation
import LoomData
import LoomExperiments
import LoomRuntime
import LoomTestSupport
import LoomTraining
import XCTest

/// `loom experiment --status`: the parts of a study and how far each has come, read from the
/// results file, checkpoints and training locks.
final class StudyStatusTests: TemporaryDirectoryTestCase {
    /// The seeded study splits into the parts its documentation runs: one per training variant,
    /// the autoguidance guide joined to the model it guides; parts in the order of their first row.
    func testPartsOfTheSeededStudy() throws {
        let path = RepositoryPaths.root.appendingPathComponent("Benchmarks/study/ig-study-seeds.json").path
        let config = try ExperimentConfig.load(path: path)
        let parts = config.partsOfASeed()
        XCTAssertEqual(parts.map(\.variants), [["vanilla", "guide-short"], ["ig-l2-lam0.5"], ["ig-l2-lam0.1"],
                                               ["ig-l4-lam0.1"], ["accel-l2-omega0.5"], ["vanilla-d12"], ["ig-l3-d12"]])
        XCTAssertEqual(parts.flatMap(\.rows).map(\.label).sorted(), config.rows.map(\.label).sorted(),
                       "every row is in exactly one part")
    }

    /// A row that needs variants of two parts found earlier joins them into one, rows in config order.
    func testARowNeedingTwoPartsJoinsThem() throws {
        var config = try ExperimentConfig.load(path: ExperimentRunnerTests.tinyConfigPath)
        var guided = config.rows[0]
        guided.label = "vanilla guided by ig"
        guided.guidance = .autoguidance
        guided.w = 2
        guided.guide = "ig"
        config.rows.append(guided)
        let parts = config.partsOfASeed()
        XCTAssertEqual(parts.map(\.variants), [["vanilla", "ig"]])
        XCTAssertEqual(parts[0].rows.map(\.label), config.rows.map(\.label))
        guided.guidance = .ig
        config.rows[2] = guided
        XCTAssertEqual(config.partsOfASeed().map(\.variants), [["vanilla"], ["ig"]],
                       "a guide named by a row whose guidance runs no guide network joins nothing")
    }

    func testStatusFollowsAStudyThroughItsParts() throws {
        guard FileManager.default.fileExists(atPath: Dataset.fashionMNISTDefaultRoot) else {
            throw XCTSkip("Fashion-MNIST is not installed at \(Dataset.fashionMNISTDefaultRoot)")
        }
        let config = try SeededStudyTests.seededConfig(out: directory + "/study",
                                                         classifier: directory + "/classifier.safetensors")
        let runner = ExperimentRunner(config: config, command: "status test") { _ in }
        let fresh = try runner.status()
        XCTAssertEqual(fresh.parts.count, 4)
        XCTAssertEqual(fresh.parts.map(\.seed), [3, 3, 4, 4])
        XCTAssertEqual(fresh.partsDone, 0)
        XCTAssertTrue(fresh.parts.allSatisfy { !$0.isStarted && $0.training == [.notStarted] })

        // Half of one variant's training (a checkpoint at step 4 of 8), and one whole part.
        var shorter = config
        shorter.training[1].steps = 4
        try ExperimentRunner(config: shorter, command: "half") { _ in }.train(shorter.training[1], seed: 3)
        try runner.run(variants: ["vanilla"], seeds: [4])
        let status = try runner.status()
        let halfway = try XCTUnwrap(status.parts.first { $0.variants == ["ig"] && $0.seed == 3 })
        XCTAssertEqual(halfway.training, [.atStep(4, of: 8)])
        XCTAssertTrue(halfway.isStarted && !halfway.isDone)
        let finished = try XCTUnwrap(status.parts.first { $0.variants == ["vanilla"] && $0.seed == 4 })
        XCTAssertTrue(finished.isDone)
        XCTAssertEqual(finished.training, [.finished])
        XCTAssertEqual(status.partsDone, 1)
        XCTAssertEqual(status.resultsDone, 1)

        let report = status.report(configPath: "study.json")
        XCTAssertTrue(report.hasPrefix("study.json: 1 of 4 parts done, 1 of 4 (row, seed) results"), report)
        XCTAssertTrue(report.contains("ig seed 3: 0 of 1 rows; ig at step 4 of 8"), report)
        XCTAssertTrue(report.contains("loom experiment study.json --variants ig --seeds 3 --threads 1"), report)
        XCTAssertFalse(report.contains("--variants vanilla --seeds 4"), "a finished part has no command\n\(report)")

        // A part whose training lock another process holds is training now, and gets no command.
        let folder = runner.runFolder("ig", seed: 4)
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let lock = try FileLock.acquire(TrainingRun.lockPath(directory: folder))
        let busy = try runner.status()
        XCTAssertEqual(busy.parts.first { $0.variants == ["ig"] && $0.seed == 4 }?.trainingNow, true)
        XCTAssertFalse(busy.report(configPath: "s.json").contains("--variants ig --seeds 4"))
        lock.release()
        XCTAssertEqual(try runner.status().parts.first { $0.variants == ["ig"] && $0.seed == 4 }?.trainingNow, false)
    }
}
