import Foundation
import LoomCompiler
import LoomData
import LoomDiffusion
import LoomIR
import LoomRuntime
import LoomTestSupport
import LoomTraining
import XCTest

/// Elementwise chains recompute a shared one-instruction producer instead of reading it back, and
/// compute a value once when every reader of it is in the same chain.
extension FusedKernelTests {
    func testSharedUnaryIsRecomputedInEachChain() throws {
        let g = GraphBuilder(name: "shared_square")
        let x = g.input("x", TensorType(.f32, [3, 40]))
        let y = g.input("y", TensorType(.f32, [3, 40]))
        let product = x.matmul(y, transposeB: true)            // [3, 3]: not elementwise, stays in memory
        let shared = product.square()
        g.output("a", (shared * 2 + 1).unary(.tanh))
        g.output("b", (shared + product).unary(.sigmoid))
        let graph = try g.build()
        let optimised = try Pipeline.inference().run(graph)
        let text = IRPrinter.print(optimised)
        XCTAssertFalse(optimised.nodes.contains { $0.op == .unary(.square) }, "square left as its own pass:\n\(text)")
        let recomputing = text.split(separator: "\n").filter { $0.contains("= fused_elementwise(") && $0.contains("square(r") }
        XCTAssertEqual(recomputing.count, 2, text)
        let inputs = ["x": TestTensors.random([3, 40], seed: 60), "y": TestTensors.random([3, 40], seed: 61)]
        let reference = try ReferenceExecutor(threads: 1).run(graph, inputs: inputs, parameters: [:])
        let mine = try ReferenceExecutor(threads: 1).run(optimised, inputs: inputs, parameters: [:])
        for name in ["a", "b"] { XCTAssertLessThanOrEqual(GoldenCheck.relativeError(mine[name]!, reference[name]!), 1e-6, name) }
    }

    func testValueReadTwiceInsideOneChainStaysInIt() throws {
        // u + s·(c − u): u has two readers, both in the chain that makes the result.
        let g = GraphBuilder(name: "cfg_like")
        let a = g.input("a", TensorType(.f32, [2, 5]))
        let b = g.input("b", TensorType(.f32, [2, 5]))
        let u = a * b + a
        let c = (a - b).exp()
        g.output("d", u + (c - u) * 1.5)
        let graph = try g.build()
        let fused = try checkFusion(graph, inputs: ["a": TestTensors.random([2, 5], seed: 62), "b": TestTensors.random([2, 5], seed: 63)],
                                    expect: { if case .elementwise = $0 { return true } else { return false } },
                                    "value read twice in one chain")
        XCTAssertEqual(Self.liveLaunches(fused).map(\.op.mnemonic), ["fused_elementwise"], IRPrinter.print(fused))
    }
}
