import Foundation
import LoomCompiler
import LoomData
import LoomDiffusion
import LoomGraphs
import LoomIR
import LoomTestSupport
import LoomTraining
import XCTest

final class BlockProfileTests: XCTestCase {
    private func smallConfig(_ backbone: Backbone, igLayer: Int? = 1) -> ModelConfig {
        ModelConfig(backbone: backbone, inputSize: 8, inChannels: 4, learnSigma: false, patch: 2,
                    hidden: 32, depth: 3, heads: 2, numClasses: 10, igLayer: igLayer)
    }

    /// Blocks come from the graph's annotations, not from names the compiler knows.
    func testScopeMapping() throws {
        let graph = try DiffusionTransformer(smallConfig(.lightningdit, igLayer: 2)).forwardGraph(batch: 1)
        func block(_ scope: String) -> String { BlockAttribution.block(forScope: scope, in: graph) }
        let labels = DiffusionTransformer.BlockLabel.self
        XCTAssertEqual(block("blocks.2.attn.qkv"), "blocks.2")
        XCTAssertEqual(block("blocks.12"), BlockAttribution.other, "no such block annotated")
        XCTAssertEqual(block("final_layer_xr.linear"), labels.igHead)
        XCTAssertEqual(block("final_layer.adaLN_modulation.1"), labels.finalLayer)
        XCTAssertEqual(block("t_embedder.mlp.0"), labels.embedders)
        XCTAssertEqual(block("feat_rope"), labels.embedders)
        XCTAssertEqual(block(HoistConditioningPass.scope), labels.embedders)
        XCTAssertEqual(block(""), BlockAttribution.objective)
        XCTAssertEqual(block(Naming.optimizerScope), BlockAttribution.optimizer)
        XCTAssertEqual(BlockAttribution.block(forKey: "optim.m.blocks.0.attn.qkv.weight", in: graph), BlockAttribution.optimizer)
        XCTAssertEqual(BlockAttribution.block(forKey: "ema.pos_embed", in: graph), BlockAttribution.optimizer)
        XCTAssertEqual(BlockAttribution.block(forKey: "pos_embed", in: graph), labels.embedders)
        XCTAssertEqual(block("mystery.module"), BlockAttribution.other)
        // Another author's annotation is read the same way.
        var renamed = graph
        renamed.scopeBlocks = [ScopeBlock(scope: "blocks.1", block: "middle", repeated: true)]
        XCTAssertEqual(BlockAttribution.block(forScope: "blocks.1.mlp", in: renamed), "middle")
        XCTAssertEqual(BlockAttribution.block(forScope: "blocks.0.mlp", in: renamed), BlockAttribution.other)
        // The annotations survive the IR text (and so plan files).
        XCTAssertEqual(try IRParser.parse(IRPrinter.print(graph)).scopeBlocks, graph.scopeBlocks)
    }

    func testForwardGraphAttributionAndOrder() throws {
        for backbone in Backbone.allCases {
            let config = smallConfig(backbone, igLayer: 2)
            let graph = try DiffusionTransformer(config).forwardGraph(batch: 2)
            let attribution = BlockAttribution(graph: graph)
            XCTAssertEqual(attribution.blocks,
                           ["embedders", "blocks.0", "blocks.1", "ig_head", "blocks.2", "final_layer"], "\(backbone)")
            XCTAssertFalse(attribution.isBackward.contains(true))
            XCTAssertFalse(attribution.labels.contains(BlockAttribution.other))
            // Top-level nodes: the model inputs and the two embedding sums join the embedders.
            for node in graph.nodes where node.scope.isEmpty {
                XCTAssertEqual(attribution.labels[node.id], DiffusionTransformer.BlockLabel.embedders, "\(node.op.mnemonic)")
            }
            let profile = BlockProfile(graph: graph)
            XCTAssertEqual(profile.rows.map(\.block), attribution.blocks)
            XCTAssertEqual(profile.totals.params, graph.pytorchParameterCount)
            XCTAssertEqual(profile.totals.forwardMACs, CostModel.total(of: graph).macs)
            XCTAssertEqual(profile.totals.forwardFLOPs, CostModel.total(of: graph).flops)
            XCTAssertEqual(profile.totals.backwardMACs, 0)
            XCTAssertEqual(profile.totals.savedBytes, 0)
            let blocks = profile.rows.filter { $0.block.hasPrefix("blocks.") }
            XCTAssertEqual(Set(blocks.map(\.forwardMACs)).count, 1, "identical blocks cost the same")
            XCTAssertEqual(Set(blocks.map(\.params)).count, 1)
        }
    }

    func testDiTXLBlocksDominate() throws {
        let graph = try DiffusionTransformer(.preset(.dit, .XL, patch: 2)).forwardGraph(batch: 1)
        let profile = BlockProfile(graph: graph)
        XCTAssertEqual(profile.rows.count, 28 + 2)
        XCTAssertEqual(profile.rows.first?.block, "embedders")
        XCTAssertEqual(profile.rows[28].block, "blocks.27")
        let block = try XCTUnwrap(profile.row("blocks.0"))
        // 12·T·D² linears + 2·T²·D attention + 6·D² adaLN at T = 256, D = 1152.
        XCTAssertEqual(block.forwardMACs, 12 * 256 * 1152 * 1152 + 2 * 256 * 256 * 1152 + 6 * 1152 * 1152)
        XCTAssertEqual(block.trainableParams, 12 * 1152 * 1152 + 9 * 1152 + 6 * 1152 * 1152 + 6 * 1152)
        XCTAssertEqual(profile.totals.params, graph.pytorchParameterCount)
    }

    func testMeasurementsTableAndJSON() throws {
        let graph = try DiffusionTransformer(smallConfig(.sit)).forwardGraph(batch: 2)
        var profile = BlockProfile(graph: graph)
        profile.addMeasurement(block: "blocks.0", seconds: 0.002)
        profile.addMeasurement(block: "blocks.0", seconds: 0.001)
        profile.setPeakTransient(block: "blocks.0", bytes: 3_000_000)
        profile.setPeakTransient(block: "final_layer", bytes: 1_000_000)
        let row = try XCTUnwrap(profile.row("blocks.0"))
        XCTAssertEqual(try XCTUnwrap(row.seconds), 0.003, accuracy: 1e-12)
        XCTAssertEqual(try XCTUnwrap(row.gflopsPerSecond), Double(row.forwardFLOPs) / 0.003 / 1e9, accuracy: 1e-9)
        XCTAssertEqual(profile.totals.peakTransientBytes, 3_000_000)
        XCTAssertNil(profile.row("blocks.1")?.seconds)

        let table = profile.table()
        print(table)
        let lines = table.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, profile.rows.count + 4)
        XCTAssertTrue(lines[0].hasPrefix("block"))
        for column in BlockProfile.columns { XCTAssertTrue(lines[0].contains(column), column) }
        XCTAssertEqual(Set(lines.map(\.count)).count, 1, "fixed width")
        XCTAssertTrue(lines.last!.hasPrefix("total"))

        let json = profile.json()
        XCTAssertEqual(json, profile.json(), "stable")
        let decoded = try JSONDecoder().decode(BlockProfile.self, from: Data(json.utf8))
        XCTAssertEqual(decoded, profile)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        XCTAssertEqual(Set(object.keys), ["graph", "rows", "totals"])
    }

    func testMemoryTimelineCSV() {
        let points = (0..<40).map { (launch: $0, bytes: 1_000_000 * (($0 * 7) % 23) + 512) }
        let labels = (0..<40).map { $0 < 10 ? "embedders" : $0 < 30 ? "blocks.0" : "final_layer" }
        let timeline = MemoryTimeline(points: points, labels: labels, title: "SiT <tiny> & co")
        let csv = timeline.csv().split(separator: "\n").map(String.init)
        XCTAssertEqual(csv.first, "launch,bytes,block")
        XCTAssertEqual(csv.count, points.count + 1)
        XCTAssertEqual(csv[1], "0,512,embedders")
        XCTAssertEqual(csv[40], "39,\(points[39].bytes),final_layer")
        XCTAssertEqual(timeline.blockSpans.map(\.block), ["embedders", "blocks.0", "final_layer"])

        let unlabelled = MemoryTimeline(points: [(launch: 0, bytes: 10)], title: "one")
        XCTAssertEqual(unlabelled.csv(), "launch,bytes,block\n0,10,\n")
        let empty = MemoryTimeline(points: [], title: "empty")
        XCTAssertEqual(empty.csv(), "launch,bytes,block\n")
    }
}
