import Foundation
import LoomData
import LoomDiffusion
import LoomGraphs
import LoomRuntime
import LoomTestSupport
import LoomTraining
import XCTest

/// Each rank of a data-parallel run draws exactly its slice of what one process draws for the
/// global batch: data order, noise, timesteps and label dropout are indexed by global position.
final class RankSliceInputsTests: XCTestCase {
    func testRanksDrawTheirSliceOfTheGlobalBatch() throws {
        let model = ModelConfig(backbone: .sit, inputSize: 4, inChannels: 2, learnSigma: false, patch: 2,
                                hidden: 8, depth: 1, heads: 2, numClasses: 3, igLayer: 1)
        for (objective, timeSampling) in [(Objective.flowRepa, TimeSampling.logitNormal), (.ddpmEps, .uniform)] {
            let config = TrainingConfig(model: model, loss: LossSettings(objective: objective), batch: 6, steps: 4,
                                        seed: 9, labelDropout: 0.5, timeSampling: timeSampling)
            let data = try SyntheticData.dataset(model, count: 20)
            let whole = try StepInputs(config: config, dataset: data)
            let ranks = try (0..<3).map { try StepInputs(config: config, dataset: data, slice: RankSlice(rank: $0, ranks: 3)) }
            for step in [0, 3, 7] {
                let all = try whole.inputs(step: step)
                let parts = try ranks.map { try $0.inputs(step: step) }
                XCTAssertEqual(Set(all.keys), Set(parts[0].keys))
                for (name, value) in all {
                    XCTAssertEqual(parts[0][name]?.shape.first, value.shape[0] / 3, name)
                    if value.dtype == .f32 {
                        XCTAssertEqual(parts.flatMap { $0[name]!.floats }, value.floats, "\(objective) step \(step): \(name)")
                    } else {
                        XCTAssertEqual(parts.flatMap { $0[name]!.ints }, value.ints, "\(objective) step \(step): \(name)")
                    }
                }
            }
        }
    }

    func testBatchTheRanksCannotShareIsRefused() throws {
        let model = ModelConfig(backbone: .sit, inputSize: 4, inChannels: 2, learnSigma: false, patch: 2,
                                hidden: 8, depth: 1, heads: 2, numClasses: 3, igLayer: nil)
        let config = TrainingConfig(model: model, loss: LossSettings(objective: .flowRepa), batch: 5, steps: 1)
        XCTAssertThrowsError(try StepInputs(config: config, dataset: try SyntheticData.dataset(model, count: 10),
                                            slice: RankSlice(rank: 0, ranks: 2))) { error in
            XCTAssertTrue("\(error)".contains("--batch 5") && "\(error)".contains("2 ranks"), "\(error)")
        }
    }
}
