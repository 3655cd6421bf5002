import Foundation
import LoomCompiler
import LoomDiffusion
import LoomGraphs
import LoomIR
import LoomRuntime
import XCTest

/// Kernels that partition their work over the team by whole GEMMs (batched matmuls, attention
/// heads) or by fixed row panels (the fused linear): right against a Double reference, and the
/// same bits at 1 and 2 threads because each piece is computed by one single-threaded GEMM.
final class ThreadPartitionTests: XCTestCase {
    func testBatchedMatmulEntriesAreSpreadOverThreads() throws {
        for (ta, tb) in [(false, false), (false, true), (true, false)] {
            let (batch, m, n, k) = (6, 40, 30, 24)
            let b = GraphBuilder(name: "batched")
            let x = b.input("a", TensorType(.f32, ta ? [batch, k, m] : [batch, m, k]))
            let y = b.input("b", TensorType(.f32, tb ? [batch, n, k] : [batch, k, n]))
            b.output("c", x.matmul(y, transposeA: ta, transposeB: tb))
            let graph = try b.build()
            let a = FusedKernelTests.random(graph.nodes[0].type.shape, seed: 5)
            let c = FusedKernelTests.random(graph.nodes[1].type.shape, seed: 6)
            let inputs = ["a": a, "b": c]
            let one = try ReferenceExecutor(threads: 1).run(graph, inputs: inputs, parameters: [:])["c"]!
            let two = try ReferenceExecutor(threads: 2).run(graph, inputs: inputs, parameters: [:])["c"]!
            XCTAssertEqual(one, two, "ta \(ta) tb \(tb): 1 vs 2 threads")
            var expected = [Float](repeating: 0, count: batch * m * n)
            let (af, cf) = (a.floats, c.floats)
            for e in 0..<batch {
                for i in 0..<m {
                    for j in 0..<n {
                        var sum = 0.0
                        for p in 0..<k {
                            let av = ta ? af[(e * k + p) * m + i] : af[(e * m + i) * k + p]
                            let bv = tb ? cf[(e * n + j) * k + p] : cf[(e * k + p) * n + j]
                            sum += Double(av) * Double(bv)
                        }
                        expected[(e * m + i) * n + j] = Float(sum)
                    }
                }
            }
            XCTAssertLessThanOrEqual(GoldenCheck.relativeError(one, HostTensor(shape: one.shape, floats: expected)), 1e-6)
        }
    }

    func testLinearPanelsGiveTheSameBitsAtAnyTeamSize() throws {
        // 3·100 rows: three panels, the last one short.
        let b = GraphBuilder(name: "linear")
        let x = b.input("x", TensorType(.f32, [3, 100, 19]))
        b.output("y", b.scoped("fc") { Linear(b, 19, 40)(x).unary(.geluTanh) })
        let graph = try b.build()
        let fused = try FusionPass().run(graph)
        XCTAssertTrue(FusedKernelTests.kernels(fused).contains(.linear(activation: .geluTanh)))
        let inputs = ["x": FusedKernelTests.random([3, 100, 19], seed: 1)]
        let parameters = ["fc.weight": FusedKernelTests.random([40, 19], seed: 2), "fc.bias": FusedKernelTests.random([40], seed: 3)]
        let reference = try ReferenceExecutor(threads: 1).run(graph, inputs: inputs, parameters: parameters)["y"]!
        let one = try ReferenceExecutor(threads: 1).run(fused, inputs: inputs, parameters: parameters)["y"]!
        let two = try ReferenceExecutor(threads: 2).run(fused, inputs: inputs, parameters: parameters)["y"]!
        XCTAssertEqual(one, two, "fused linear: 1 vs 2 threads")
        XCTAssertLessThanOrEqual(GoldenCheck.relativeError(one, reference), 1e-5)
    }
}
