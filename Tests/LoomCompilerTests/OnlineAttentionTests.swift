import Foundation
import LoomCompiler
import LoomData
import LoomDiffusion
import LoomIR
import LoomRuntime
import LoomTestSupport
import LoomTraining
import XCTest

/// Long token counts: the attention kernels switch to the online softmax over key blocks.
extension FusedKernelTests {
    func testOnlineSoftmaxAttentionForLongTokenCounts() throws {
        // 1,500 queries × 1,500 keys per head is above the switch; 6 key blocks, the last one short.
        let (b, h, t, d) = (1, 2, 1500, 16)
        XCTAssertGreaterThan(t * t, KernelLibrary.onlineSoftmaxScores)
        let g = GraphBuilder(name: "long_attention")
        let q = g.input("q", TensorType(.f32, [b, h, t, d]))
        let k = g.input("k", TensorType(.f32, [b, h, t, d]))
        let v = g.input("v", TensorType(.f32, [b, h, t, d]))
        let scale = 1 / Float(d).squareRoot()
        g.output("out", (q * scale).matmul(k, transposeB: true).softmax().matmul(v))
        let graph = try g.build()
        // Large scores (±4 before scaling) so the running max moves between blocks.
        let inputs = ["q": TestTensors.random([b, h, t, d], seed: 70, low: -4, high: 4),
                      "k": TestTensors.random([b, h, t, d], seed: 71, low: -4, high: 4),
                      "v": TestTensors.random([b, h, t, d], seed: 72)]
        _ = try checkFusion(graph, inputs: inputs, gemm: true, expect: { $0 == .attention(scale: scale) }, "online attention")
    }
}
