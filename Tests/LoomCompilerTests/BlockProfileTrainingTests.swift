import Foundation
import LoomCompiler
import LoomData
import LoomDiffusion
import LoomGraphs
import LoomIR
import LoomTestSupport
import LoomTraining
import XCTest

/// Per-block attribution of a full training graph: forward, flow loss, autodiff, AdamW + EMA.
final class BlockProfileTrainingTests: XCTestCase {
    let config = ModelConfig(backbone: .sit, inputSize: 8, inChannels: 4, learnSigma: false, patch: 2,
                             hidden: 32, depth: 3, heads: 2, numClasses: 10, igLayer: 1)

    func trainingGraph() throws -> Graph {
        let model = try DiffusionTransformer(config)
        let loss = try objectiveGraph(model, batch: 2, settings: LossSettings(objective: .flowRepa))
        let grads = try Pipeline.differentiate(loss)
        return try OptimizerPass.append(grads, settings: AdamWSettings())
    }

    func testTrainingGraphBlocks() throws {
        let graph = try trainingGraph()
        let attribution = BlockAttribution(graph: graph)
        let known: Set<String> = ["embedders", "blocks.0", "blocks.1", "blocks.2", "ig_head", "final_layer",
                                  "objective", "optimizer"]
        for node in graph.nodes {
            XCTAssertTrue(known.contains(attribution.labels[node.id]),
                          "node %\(node.id) \(node.op.mnemonic) scope \"\(node.scope)\" → \(attribution.labels[node.id])")
        }
        XCTAssertEqual(attribution.blocks,
                       ["embedders", "blocks.0", "ig_head", "blocks.1", "blocks.2", "final_layer", "objective", "optimizer"])
        XCTAssertTrue(attribution.isBackward.contains(true))
        for node in graph.nodes where attribution.labels[node.id] == BlockAttribution.optimizer {
            XCTAssertFalse(attribution.isBackward[node.id])
        }

        let profile = BlockProfile(graph: graph)
        print(profile.table())
        let forward = try DiffusionTransformer(config).forwardGraph(batch: 2)
        XCTAssertEqual(profile.totals.params, forward.pytorchParameterCount)
        XCTAssertEqual(profile.rows.reduce(0) { $0 + $1.params }, forward.parameterCount)
        XCTAssertEqual(profile.totals.trainableParams,
                       graph.parameterNodes.filter { $0.role == .parameter }.reduce(0) { $0 + $1.type.elementCount })

        for index in 0..<config.depth {
            let row = try XCTUnwrap(profile.row("blocks.\(index)"))
            XCTAssertGreaterThan(row.forwardMACs, 0)
            let ratio = Double(row.backwardMACs) / Double(row.forwardMACs)
            XCTAssertTrue((1.5...2.5).contains(ratio), "blocks.\(index) backward/forward MACs \(ratio)")
            XCTAssertGreaterThan(row.savedBytes, 0)
            XCTAssertGreaterThan(row.params, 0)
        }
        let ig = try XCTUnwrap(profile.row(DiffusionTransformer.BlockLabel.igHead))
        XCTAssertGreaterThan(ig.forwardMACs, 0)
        XCTAssertGreaterThan(ig.backwardMACs, 0)
        XCTAssertEqual(ig.params, try XCTUnwrap(profile.row(DiffusionTransformer.BlockLabel.finalLayer)).params)
        let optimizer = try XCTUnwrap(profile.row(BlockAttribution.optimizer))
        XCTAssertEqual(optimizer.forwardMACs + optimizer.backwardMACs, 0)
        XCTAssertGreaterThan(optimizer.forwardFLOPs, 0)
        XCTAssertEqual(optimizer.params, 0, "optimizer state is not model parameters")
        XCTAssertEqual(profile.totals.forwardFLOPs + profile.totals.backwardFLOPs, CostModel.total(of: graph).flops)
        XCTAssertEqual(profile.totals.forwardMACs + profile.totals.backwardMACs, CostModel.total(of: graph).macs)

        let json = profile.json()
        let decoded = try JSONDecoder().decode(BlockProfile.self, from: Data(json.utf8))
        XCTAssertEqual(decoded, profile)
        XCTAssertEqual(decoded.json(), json)
    }
}
