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

/// Kernels that partition their work over the team by whole GEMMs (batched matmuls, attention
/// heads) or by slabs of one GEMM (large matmuls, every fused linear): right against a Double
/// reference, and the same bits at 1 and 2 threads (Loom's GEMM computes each element of C the
/// same way in any slab).
final class ThreadPartitionTests: XCTestCase {
    func testBatchedMatmulEntriesAreSpreadOverThreads() throws {
        for (ta, tb) in [(false, false), (false, true), (true, false)] {
            let (batch, m, n, k) = (6, 40, 30, 24)
            let b = GraphBuilder(name: "batched")
            let x = b.input("a", TensorType(.f32, ta ? [batch, k, m] : [batch, m, k]))
            let y = b.input("b", TensorType(.f32, tb ? [batch, n, k] : [batch, k, n]))
            b.output("c", x.matmul(y, transposeA: ta, transposeB: tb))
            let graph = try b.build()
            let a = TestTensors.random(graph.nodes[0].type.shape, seed: 5)
            let c = TestTensors.random(graph.nodes[1].type.shape, seed: 6)
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

    func testLargeGEMMSlabsAgreeAtOneAndTwoThreads() throws {
        // Above the partition threshold: split by rows ([600, 70]·[70, 90]), by columns (Aᵀ·B with
        // a wide output), and a batched matmul with one entry (split like a plain GEMM).
        let cases: [(shapeA: [Int], shapeB: [Int], ta: Bool, tb: Bool)] = [
            ([600, 70], [70, 90], false, false), ([70, 48], [70, 320], true, false),
            ([1, 200, 60], [1, 130, 60], false, true),
        ]
        for (index, c) in cases.enumerated() {
            let b = GraphBuilder(name: "slabs")
            let x = b.input("a", TensorType(.f32, c.shapeA)), y = b.input("b", TensorType(.f32, c.shapeB))
            b.output("c", x.matmul(y, transposeA: c.ta, transposeB: c.tb))
            let graph = try b.build()
            let out = graph.nodes.last!.type.shape
            let (m, n) = (out[out.count - 2], out[out.count - 1])
            let k = c.ta ? c.shapeA[c.shapeA.count - 2] : c.shapeA.last!
            XCTAssertGreaterThanOrEqual(m * n * k, 1 << 20, "case \(index) must be large enough to split")
            let inputs = ["a": TestTensors.random(c.shapeA, seed: 10 + UInt64(index)),
                          "b": TestTensors.random(c.shapeB, seed: 20 + UInt64(index))]
            let one = try ReferenceExecutor(threads: 1).run(graph, inputs: inputs, parameters: [:])["c"]!
            let two = try ReferenceExecutor(threads: 2).run(graph, inputs: inputs, parameters: [:])["c"]!
            XCTAssertEqual(two, one, "case \(index): 1 vs 2 threads")
            let expected = Self.doubleMatmul(inputs["a"]!, inputs["b"]!, ta: c.ta, tb: c.tb, outShape: out)
            XCTAssertLessThanOrEqual(GoldenCheck.relativeError(one, expected), 1e-6, "case \(index)")
        }
    }

    func testFusedLinearSlabsRunTheirEpilogue() throws {
        try checkLinearSlabs(batch: 2, rows: 300, in: 64, out: 96)   // split by rows
        try checkLinearSlabs(batch: 1, rows: 40, in: 96, out: 400)   // few rows: split by columns
    }

    private func checkLinearSlabs(batch: Int, rows: Int, in k: Int, out n: Int) throws {
        let b = GraphBuilder(name: "linear")
        let x = b.input("x", TensorType(.f32, [batch, rows, k]))
        b.output("y", b.scoped("fc") { Linear(b, k, n)(x).unary(.geluTanh) })
        let graph = try b.build()
        let fused = try FusionPass().run(graph)
        XCTAssertTrue(FusedKernelTests.kernels(fused).contains(.linear(activation: .geluTanh)))
        XCTAssertGreaterThanOrEqual(batch * rows * n * k, KernelLibrary.partitionedGEMMThreshold, "large enough to split")
        let inputs = ["x": TestTensors.random([batch, rows, k], seed: 7)]
        let parameters = ["fc.weight": TestTensors.random([n, k], seed: 8), "fc.bias": TestTensors.random([n], seed: 9)]
        let reference = try ReferenceExecutor(threads: 1).run(graph, inputs: inputs, parameters: parameters)["y"]!
        let one = try ReferenceExecutor(threads: 1).run(fused, inputs: inputs, parameters: parameters)["y"]!
        let two = try ReferenceExecutor(threads: 2).run(fused, inputs: inputs, parameters: parameters)["y"]!
        XCTAssertEqual(two, one, "fused linear slabs: 1 vs 2 threads")
        XCTAssertLessThanOrEqual(GoldenCheck.relativeError(two, reference), 1e-5)
    }

    /// op(A)·op(B) in Double over a leading batch axis (or none), rounded to Float.
    static func doubleMatmul(_ a: HostTensor, _ b: HostTensor, ta: Bool, tb: Bool, outShape: [Int]) -> HostTensor {
        let (m, n) = (outShape[outShape.count - 2], outShape[outShape.count - 1])
        let batch = outShape.dropLast(2).reduce(1, *)
        let k = ta ? a.shape[a.shape.count - 2] : a.shape.last!
        let (af, bf) = (a.floats, b.floats)
        var out = [Float](repeating: 0, count: batch * m * n)
        for e in 0..<batch {
            for i in 0..<m {
                for j in 0..<n {
                    var sum = 0.0
                    for p in 0..<k {
                        let av = ta ? af[e * k * m + p * m + i] : af[e * m * k + i * k + p]
                        let bv = tb ? bf[e * n * k + j * k + p] : bf[e * k * n + p * n + j]
                        sum += Double(av) * Double(bv)
                    }
                    out[(e * m + i) * n + j] = Float(sum)
                }
            }
        }
        return HostTensor(shape: outShape, floats: out)
    }
}
