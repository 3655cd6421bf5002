import Foundation
import LoomData
import LoomDiffusion
import LoomGraphs
import LoomRuntime
import LoomTestSupport
import LoomTraining
import XCTest

/// Training a tiny SiT+IG on a fixed Fashion-MNIST subset: both heads learn, and a resumed run is
/// bit-identical to an uninterrupted one.
final class TrainingTests: XCTestCase {
    func tinyConfig(steps: Int) -> TrainingConfig {
        let model = ModelConfig(backbone: .sit, inputSize: 32, inChannels: 1, learnSigma: false, patch: 8,
                                hidden: 32, depth: 2, heads: 2, numClasses: 10, igLayer: 1)
        return TrainingConfig(model: model, loss: LossSettings(objective: .flowRepa), batch: 16, steps: steps,
                              learningRate: 2e-3, seed: 5)
    }

    func fashionSubset(_ count: Int) throws -> Dataset {
        guard FileManager.default.fileExists(atPath: Dataset.fashionMNISTDefaultRoot) else {
            throw XCTSkip("dataset-fashion-mnist is not installed")
        }
        return try Dataset.fashionMNIST(split: .train, padTo: 32, limit: count)
    }

    func testBothHeadsLearn() throws {
        let trainer = try Trainer(config: tinyConfig(steps: 300), dataset: try fashionSubset(256), threads: 1)
        var logs: [Trainer.StepLog] = []
        for _ in 0..<300 { logs.append(try trainer.step()) }
        func average(_ range: Range<Int>, _ value: (Trainer.StepLog) -> Float) -> Float {
            logs[range].map(value).reduce(0, +) / Float(range.count)
        }
        let startFinal = average(0..<10) { $0.lossFinal }, endFinal = average(280..<300) { $0.lossFinal }
        let startInter = average(0..<10) { $0.lossInter! }, endInter = average(280..<300) { $0.lossInter! }
        print("final head \(startFinal) → \(endFinal); IG head \(startInter) → \(endInter)")
        XCTAssertLessThan(endFinal, 0.6 * startFinal)
        XCTAssertLessThan(endInter, 0.6 * startInter)
    }

    func testResumeIsBitIdentical() throws {
        let data = try fashionSubset(64)
        let config = tinyConfig(steps: 6)
        let straight = try Trainer(config: config, dataset: data, threads: 1)
        for _ in 0..<6 { try straight.step() }

        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("loom-resume-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let first = try Trainer(config: config, dataset: data, threads: 1)
        Interruption.request()  // as if Ctrl-C arrived during the first step
        let outcome = try TrainingRun(directory: directory, checkpointEvery: 0).run(first) { _ in }
        Interruption.clear()
        XCTAssertEqual(outcome, .interrupted)
        XCTAssertEqual(first.state.step, 1)

        let checkpoint = directory + "/checkpoint.safetensors"
        let (state, savedConfig) = try TrainingState.load(path: checkpoint, graph: first.graph)
        XCTAssertEqual(savedConfig, config)
        let resumed = try Trainer(config: savedConfig, dataset: data, state: state, threads: 1)
        XCTAssertEqual(try TrainingRun(directory: directory, checkpointEvery: 2).run(resumed) { _ in }, .finished)
        XCTAssertEqual(resumed.state.step, 6)
        XCTAssertEqual(Set(resumed.state.tensors.keys), Set(straight.state.tensors.keys))
        for (name, value) in straight.state.tensors {
            XCTAssertTrue(resumed.state.tensors[name] == value, "\(name) differs after resume")
        }
        let log = try String(contentsOfFile: directory + "/loss.csv", encoding: .utf8)
        XCTAssertEqual(log.split(separator: "\n").count, 7, "header + one row per step")
    }

    /// A second process training into a folder in use stops before it touches the log or the
    /// checkpoint; once the folder is free, the run goes ahead.
    func testRunFolderInUseIsRefused() throws {
        let data = try fashionSubset(32)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("loom-busy-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let run = TrainingRun(directory: directory, checkpointEvery: 0)
        try "step,loss\n1,0.5\n".write(toFile: run.lossLogPath, atomically: true, encoding: .utf8)
        let holder = try XCTUnwrap(try FileLock.tryAcquire(run.lockPath))
        let trainer = try Trainer(config: tinyConfig(steps: 2), dataset: data, threads: 1)
        XCTAssertThrowsError(try run.run(trainer) { _ in }) { error in
            XCTAssertTrue("\(error)".contains(directory) && "\(error)".contains("in use"), "\(error)")
        }
        XCTAssertEqual(trainer.stepCount, 0)
        XCTAssertEqual(try String(contentsOfFile: run.lossLogPath, encoding: .utf8), "step,loss\n1,0.5\n")
        XCTAssertFalse(FileManager.default.fileExists(atPath: run.checkpointPath))
        holder.release()
        XCTAssertEqual(try run.run(trainer) { _ in }, .finished)
        XCTAssertEqual(trainer.stepCount, 2)
        XCTAssertNotNil(try FileLock.tryAcquire(run.lockPath), "the run gives the folder back")
    }

    func testCheckpointRejectsOtherModel() throws {
        let data = try fashionSubset(32)
        let trainer = try Trainer(config: tinyConfig(steps: 1), dataset: data, threads: 1)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("loom-ckpt-\(UUID()).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try trainer.state.save(to: path, config: trainer.config)
        var other = tinyConfig(steps: 1)
        other.model.hidden = 64
        let graph = try Trainer.trainingGraph(other)
        XCTAssertThrowsError(try TrainingState.load(path: path, graph: graph)) { error in
            XCTAssertTrue("\(error)".contains("expected"), "\(error)")
        }
    }
}
