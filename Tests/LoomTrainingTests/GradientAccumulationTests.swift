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

/// `--accumulate K`: K micro-batches of B/K give the step of one batch of B (to float rounding),
/// with the activations of B/K only; the checkpoint is the same kind of file.
final class GradientAccumulationTests: XCTestCase {
    func config(accumulate: Int?) -> TrainingConfig {
        let model = ModelConfig(backbone: .sit, inputSize: 8, inChannels: 1, learnSigma: false, patch: 2,
                                hidden: 16, depth: 2, heads: 2, numClasses: 3, igLayer: 1)
        var config = TrainingConfig(model: model, loss: LossSettings(objective: .flowRepa, igLambda: 0.5),
                                    batch: 8, steps: 4, learningRate: 2e-3, seed: 9)
        config.optimizer.clipNorm = 0.5
        config.optimizer.weightDecay = 0.01
        config.accumulate = accumulate
        return config
    }

    func testAccumulatedStepsEqualWholeBatchSteps() throws {
        let data = try SyntheticData.dataset(config(accumulate: nil).model, count: 24)
        let whole = try Trainer(config: config(accumulate: nil), dataset: data, threads: 1)
        for k in [2, 4] {
            let whole = k == 2 ? whole : try Trainer(config: config(accumulate: nil), dataset: data, threads: 1)
            let parts = try Trainer(config: config(accumulate: k), dataset: data, threads: 1)
            for step in 1...4 {
                let (a, b) = (try whole.step(), try parts.step())
                XCTAssertEqual(Double(b.loss), Double(a.loss), accuracy: 1e-5 * Double(abs(a.loss)), "K \(k), step \(step): loss")
                XCTAssertEqual(Double(b.lossFinal), Double(a.lossFinal), accuracy: 1e-5 * Double(abs(a.lossFinal)), "K \(k), step \(step)")
                XCTAssertEqual(Double(b.gradNorm), Double(a.gradNorm), accuracy: 1e-5 * Double(a.gradNorm), "K \(k), step \(step): |g|")
            }
            let (x, y) = (whole.state.tensors, parts.state.tensors)
            XCTAssertEqual(Set(x.keys), Set(y.keys), "the same checkpoint table")
            for (name, value) in x where value.dtype == .f32 {
                let worst = zip(value.floats, y[name]!.floats).map { abs($0 - $1) }.max() ?? 0
                XCTAssertLessThanOrEqual(worst, 1e-5, "K \(k): \(name)")
            }
        }
    }

    func testMicroBatchPlanNeedsLessMemory() throws {
        let whole = try Trainer.trainingPlan(config(accumulate: nil))
        var big = config(accumulate: 4)
        big.batch = 32
        var plain = big
        plain.accumulate = nil
        let full = try Trainer.trainingPlan(plain)
        let data = try SyntheticData.dataset(big.model, count: 40)
        XCTAssertNoThrow(try Trainer(config: big, dataset: data, threads: 1))
        XCTAssertGreaterThan(full.memory.arenaBytes, whole.memory.arenaBytes, "sanity: the arena grows with the batch")
        let micro = try Trainer.microBatchGradientPlan(big)
        XCTAssertLessThan(Double(micro.memory.arenaBytes), 0.5 * Double(full.memory.arenaBytes),
                          "a micro-batch of 8 holds the activations of 8 samples, not 32")
        print("arena: batch 32 in one step \(full.memory.arenaBytes) bytes, micro-batch of 8 \(micro.memory.arenaBytes) bytes")
        var bad = config(accumulate: 3)
        bad.batch = 8
        XCTAssertThrowsError(try bad.validate()) { XCTAssertTrue("\($0)".contains("--accumulate 3"), "\($0)") }
    }
}
