import LoomCompiler
import LoomData
import LoomDiffusion
import LoomGraphs
import LoomIR
import LoomTestSupport
import LoomTraining
import XCTest

/// The precision pass marks exactly the matrix products, the IR text shows and round-trips it, and
/// the memory plan of a bf16 plan is the fp32 plan's (no operand copies are materialised).
final class PrecisionPassTests: XCTestCase {
    func model() throws -> DiffusionTransformer {
        try DiffusionTransformer(ModelConfig(backbone: .sit, inputSize: 8, inChannels: 4, learnSigma: false, patch: 2,
                                             hidden: 32, depth: 2, heads: 2, numClasses: 4, igLayer: 1))
    }

    func testBF16MarksEveryMatrixProductAndNothingElse() throws {
        let graph = try Pipeline.inference(precision: .bf16).run(try model().forwardGraph(batch: 2))
        let products = graph.nodes.filter { $0.op.isMatrixProduct }
        XCTAssertFalse(products.isEmpty)
        for node in graph.nodes {
            XCTAssertEqual(node.compute, node.op.isMatrixProduct ? .bf16 : .f32, IRPrinter.line(node))
        }
        XCTAssertTrue(graph.remarks.contains { $0.hasPrefix("precision:") })
        let fp32 = try Pipeline.inference().run(try model().forwardGraph(batch: 2))
        XCTAssertTrue(fp32.nodes.allSatisfy { $0.compute == .f32 })
    }

    func testIRTextShowsAndParsesTheComputePrecision() throws {
        let graph = try Pipeline.inference(precision: .bf16).run(try model().forwardGraph(batch: 2))
        let text = IRPrinter.print(graph)
        XCTAssertTrue(text.contains(" compute=bf16 : "))
        let parsed = try IRParser.parse(text, source: "test")
        XCTAssertEqual(parsed.nodes.map(\.compute), graph.nodes.map(\.compute))
        XCTAssertTrue(parsed.nodes == graph.nodes, "nodes change in the round trip")
        let bad = text.replacingOccurrences(of: "compute=bf16", with: "compute=fp16")
        XCTAssertThrowsError(try IRParser.parse(bad, source: "test")) { error in
            XCTAssertTrue("\(error)".contains("compute=fp16"), "\(error)")
        }
    }

    func testRematerialisedCopiesKeepTheirPrecision() throws {
        let network = try model()
        let forward = try network.forwardGraph(batch: 2)
        let builder = GraphBuilder(extending: forward)
        builder.output("loss", builder.tensor(forward.output(named: "out_final")!.id).square().meanAll())
        let loss = try Pipeline.differentiate(try builder.build())
        let optimized = try Pipeline.inference(precision: .bf16).run(loss)
        let blocks = RematerializationPass.candidateBlocks(optimized)
        XCTAssertFalse(blocks.isEmpty)
        let rewritten = try RematerializationPass(blocks: blocks).run(optimized)
        XCTAssertGreaterThan(rewritten.nodes.count, optimized.nodes.count)
        for node in rewritten.nodes where node.op.isMatrixProduct {
            XCTAssertEqual(node.compute, .bf16, IRPrinter.line(node))
        }
    }

    func testBF16PlanNeedsNoMoreMemoryThanFP32() throws {
        let graph = try model().forwardGraph(batch: 2)
        let fp32 = try Pipeline.inference().plan(graph)
        let bf16 = try Pipeline.inference(precision: .bf16).plan(graph)
        XCTAssertEqual(bf16.memory.arenaBytes, fp32.memory.arenaBytes)
        XCTAssertEqual(bf16.precision, .bf16)
        XCTAssertEqual(fp32.precision, .fp32)
    }
}
