import LoomBenchmarking
import LoomGraphs
import LoomRuntime
import LoomSampling
import XCTest

/// `GuidanceCost` times every guidance mode; plans that do not fit in memory together are timed one
/// mode at a time (the XL models: each plan holds its own parameters) with the same entries.
final class GuidanceCostTests: XCTestCase {
    func testInterleavedAndOneAtATimeGiveEveryMode() throws {
        let model = ModelConfig(backbone: .sit, inputSize: 8, inChannels: 4, learnSigma: false, patch: 2, hidden: 32, depth: 2,
                                heads: 2, numClasses: 10, igLayer: 1)
        let weights = SyntheticInputs.parameters(try DiffusionTransformer(model).forwardGraph(batch: 1))
        for limit in [nil, 0] as [Int?] {
            let entries = try GuidanceCost.measure(model: model, weights: weights, batch: 2, threads: 1, repeats: 2,
                                                   interleaveLimit: limit)
            XCTAssertEqual(entries.map(\.mode), [.none, .ig, .cfg, .igCfg], "limit \(String(describing: limit))")
            XCTAssertTrue(entries.allSatisfy { $0.seconds > 0 && !$0.blocks.isEmpty }, "limit \(String(describing: limit))")
            XCTAssertEqual(entries.first?.ratio, 1)
        }
    }
}
