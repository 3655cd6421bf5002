import Foundation
import LoomCompiler
import LoomData
import LoomDiffusion
import LoomGraphs
import LoomIR
import LoomRuntime
import LoomTestSupport
import LoomTraining
import XCTest

/// Training with bf16 matrix products: the losses follow the fp32 run's closely and both heads
/// learn; the precision is part of the configuration a checkpoint stores, and
/// a plan of the other precision is refused with both values named.
final class BF16TrainingTests: XCTestCase {
    func config(steps: Int, precision: PrecisionPolicy?) -> TrainingConfig {
        let model = ModelConfig(backbone: .sit, inputSize: 32, inChannels: 1, learnSigma: false, patch: 8,
                                hidden: 32, depth: 2, heads: 2, numClasses: 10, igLayer: 1)
        return TrainingConfig(model: model, loss: LossSettings(objective: .flowRepa), batch: 16, steps: steps,
                              learningRate: 2e-3, seed: 5, precision: precision)
    }

    func data() throws -> Dataset {
        guard FileManager.default.fileExists(atPath: Dataset.fashionMNISTDefaultRoot) else {
            throw XCTSkip("dataset-fashion-mnist is not installed")
        }
        return try Dataset.fashionMNIST(split: .train, padTo: 32, limit: 256)
    }

    func testLossesFollowTheFP32RunAndBothHeadsLearn() throws {
        let dataset = try data()
        let fp32 = try Trainer(config: config(steps: 300, precision: nil), dataset: dataset, threads: 2)
        let bf16 = try Trainer(config: config(steps: 300, precision: .bf16), dataset: dataset, threads: 2)
        var a: [Trainer.StepLog] = [], b: [Trainer.StepLog] = []
        for _ in 0..<300 {
            a.append(try fp32.step())
            b.append(try bf16.step())
        }
        // Step 1's output is zero (adaLN-Zero); from step 2 on only the rounding differs.
        XCTAssertTrue((1..<5).contains { a[$0].loss != b[$0].loss }, "bf16 gave the fp32 losses")
        for step in 1..<5 { XCTAssertEqual(b[step].loss, a[step].loss, accuracy: 1e-2 * a[step].loss, "step \(step + 1)") }
        func average(_ logs: [Trainer.StepLog], _ range: Range<Int>, _ value: (Trainer.StepLog) -> Float) -> Float {
            logs[range].map(value).reduce(0, +) / Float(range.count)
        }
        XCTAssertLessThan(average(b, 280..<300) { $0.lossFinal }, 0.6 * average(b, 0..<10) { $0.lossFinal })
        XCTAssertLessThan(average(b, 280..<300) { $0.lossInter! }, 0.6 * average(b, 0..<10) { $0.lossInter! })
        // The last 20 steps' mean loss within 5% of the fp32 run's.
        let (endA, endB) = (average(a, 280..<300) { $0.loss }, average(b, 280..<300) { $0.loss })
        XCTAssertEqual(endB, endA, accuracy: 0.05 * endA, "fp32 \(endA), bf16 \(endB)")
    }

    func testPrecisionIsStoredAndOldConfigurationsReadAsFP32() throws {
        let stored = try TrainingConfig.from(json: config(steps: 1, precision: .bf16).json(), source: "test")
        XCTAssertEqual(stored.resolvedPrecision, .bf16)
        var json = config(steps: 1, precision: nil).json()
        XCTAssertFalse(json.contains("precision"))
        json = json.replacingOccurrences(of: "\"precision\":null,", with: "")
        XCTAssertEqual(try TrainingConfig.from(json: json, source: "test").resolvedPrecision, .fp32)
    }

    func testAPlanOfAnotherPrecisionIsRefused() throws {
        let dataset = try data()
        let bf16 = config(steps: 1, precision: .bf16)
        let plan = try Trainer.trainingPlan(bf16)
        XCTAssertNoThrow(try Trainer(config: bf16, dataset: dataset, threads: 1, plan: plan))
        XCTAssertThrowsError(try Trainer(config: config(steps: 1, precision: nil), dataset: dataset, threads: 1, plan: plan)) { error in
            XCTAssertTrue("\(error)".contains("bf16") && "\(error)".contains("fp32"), "\(error)")
        }
    }
}
