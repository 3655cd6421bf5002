import Foundation
import LoomCompiler
import LoomData
import LoomDiffusion
import LoomGraphs
import LoomIR
import LoomRuntime
import LoomTestSupport
import XCTest

/// The backward kernels autodiff emits by default (`token_attention_backward`, the flash-style
/// attention gradient, and `norm_backward`) against the same gradients written in primitive ops.
final class BackwardKernelTests: XCTestCase {
    func testNormBackwardMatchesThePrimitiveGradient() throws {
        for (shape, rms) in [([3, 6], false), ([2, 5, 40], false), ([2, 5, 40], true), ([1, 7, 384], true), ([4, 384], false)] {
            let g = GraphBuilder(name: "norm_loss")
            let x = g.input("x", TensorType(.f32, shape))
            let scale = g.parameter("s", shape, initializer: .zeros)
            let w = g.parameter("w", shape, initializer: .zeros, trainable: false)
            let normalised = (x * scale).unary(rms ? .sin : .tanh)
            g.output("loss", ((rms ? normalised.rmsNorm(eps: 1e-6) : normalised.layerNorm(eps: 1e-6)) * w).sumAll())
            let graph = try g.build()
            let fast = try Pipeline.differentiate(graph)
            let plain = try Autodiff.differentiate(graph, loss: "loss", backwardKernels: false)
            XCTAssertEqual(fast.nodes.filter { $0.op.mnemonic == "norm_backward" }.count, 1, "\(shape)")
            let inputs = ["x": TestTensors.random(shape, seed: 50, low: -3, high: 3)]
            let parameters = ["s": TestTensors.random(shape, seed: 51), "w": TestTensors.random(shape, seed: 52)]
            let reference = try ReferenceExecutor(threads: 1).run(plain, inputs: inputs, parameters: parameters)["grad.s"]!
            let one = try ReferenceExecutor(threads: 1).run(fast, inputs: inputs, parameters: parameters)["grad.s"]!
            let two = try ReferenceExecutor(threads: 2).run(fast, inputs: inputs, parameters: parameters)["grad.s"]!
            XCTAssertLessThanOrEqual(GoldenCheck.relativeError(one, reference), 1e-5, "\(shape) rms \(rms)")
            XCTAssertEqual(one, two, "\(shape) rms \(rms): 1 vs 2 threads")
        }
    }

    func testTokenAttentionBackwardMatchesThePrimitiveGradient() throws {
        for (b, t, h, d) in [(1, 3, 1, 4), (2, 7, 3, 8), (2, 40, 2, 16)] {
            let graph = try Self.attentionLoss(batch: b, tokens: t, heads: h, depth: d)
            let fast = try Pipeline.differentiate(graph)
            let plain = try Autodiff.differentiate(graph, loss: "loss", backwardKernels: false)
            XCTAssertTrue(fast.nodes.contains { $0.op.mnemonic == "token_attention_backward" }, "kernel used")
            XCTAssertFalse(plain.nodes.contains { $0.op.mnemonic.hasPrefix("token_attention") }, "reference is primitive")
            let inputs = ["x": TestTensors.random([b, t, h * d], seed: 40, low: -2, high: 2)]
            let parameters = ["qkv.weight": TestTensors.random([3 * h * d, h * d], seed: 41, low: -0.5, high: 0.5),
                              "qkv.bias": TestTensors.random([3 * h * d], seed: 42),
                              "w": TestTensors.random([b, t, h * d], seed: 43)]
            let reference = try ReferenceExecutor(threads: 1).run(plain, inputs: inputs, parameters: parameters)
            for threads in [1, 2] {
                let mine = try ReferenceExecutor(threads: threads).run(fast, inputs: inputs, parameters: parameters)
                for name in ["loss", "grad.qkv.weight", "grad.qkv.bias"] {
                    let error = GoldenCheck.relativeError(mine[name]!, reference[name]!)
                    XCTAssertLessThanOrEqual(error, 1e-5, "[\(b),\(t),\(h)·\(d)] \(name) at \(threads) thread(s)")
                }
            }
            // The compiled plan (fusion, memory planning) agrees too.
            let plan = try Pipeline.inference().plan(fast)
            let executor = try PlanExecutor(plan: plan, threads: 2)
            try executor.setParameters(parameters)
            let planned = try executor.run(inputs: inputs)
            XCTAssertLessThanOrEqual(GoldenCheck.relativeError(planned["grad.qkv.weight"]!, reference["grad.qkv.weight"]!), 1e-5)
        }
    }

    /// Above the online-softmax switch the gradient runs over key blocks (6 here, the last one
    /// short) with [T, 256] scratch: the same gradients as the primitive [T, T] graph.
    func testLongTokenAttentionBackwardOverKeyBlocks() throws {
        let (b, t, h, d) = (1, 1500, 2, 8)
        XCTAssertGreaterThan(t * t, KernelLibrary.onlineSoftmaxScores)
        let graph = try Self.attentionLoss(batch: b, tokens: t, heads: h, depth: d)
        let fast = try Pipeline.differentiate(graph)
        let plain = try Autodiff.differentiate(graph, loss: "loss", backwardKernels: false)
        // Large scores so the running max moves between key blocks.
        let inputs = ["x": TestTensors.random([b, t, h * d], seed: 60, low: -3, high: 3)]
        let parameters = ["qkv.weight": TestTensors.random([3 * h * d, h * d], seed: 61, low: -1, high: 1),
                          "qkv.bias": TestTensors.random([3 * h * d], seed: 62),
                          "w": TestTensors.random([b, t, h * d], seed: 63)]
        let reference = try ReferenceExecutor(threads: 1).run(plain, inputs: inputs, parameters: parameters)
        let one = try ReferenceExecutor(threads: 1).run(fast, inputs: inputs, parameters: parameters)
        let two = try ReferenceExecutor(threads: 2).run(fast, inputs: inputs, parameters: parameters)
        for name in ["loss", "grad.qkv.weight", "grad.qkv.bias"] {
            XCTAssertLessThanOrEqual(GoldenCheck.relativeError(one[name]!, reference[name]!), 1e-5, name)
            XCTAssertEqual(one[name], two[name], "\(name): 1 vs 2 threads")
        }
    }

    func testAttentionWithRoPEStaysPrimitive() throws {
        // Anything between the head split and the scores keeps the primitive attention.
        let g = GraphBuilder(name: "rope_attention")
        let qkv = g.input("qkv", TensorType(.f32, [1, 4, 24]))
        let split = qkv.reshape([1, 4, 3, 2, 4]).permute([2, 0, 3, 1, 4])
        let q = split.slice(axis: 0, 0..<1).reshape([1, 2, 4, 4]).rotatePairs()
        let k = split.slice(axis: 0, 1..<2).reshape([1, 2, 4, 4])
        let v = split.slice(axis: 0, 2..<3).reshape([1, 2, 4, 4])
        let y = (q * 0.5).matmul(k, transposeB: true).softmax().matmul(v).permute([0, 2, 1, 3]).reshape([1, 4, 8])
        g.output("y", y)
        let graph = try AttentionKernelPass().run(try g.build())
        XCTAssertFalse(graph.nodes.contains { if case .fused = $0.op { return true } else { return false } })
    }

    /// loss = Σ w ⊙ attention(linear(x)) with the DiT head split, so every qkv column matters.
    static func attentionLoss(batch b: Int, tokens t: Int, heads h: Int, depth d: Int) throws -> Graph {
        let g = GraphBuilder(name: "attention_loss")
        let x = g.input("x", TensorType(.f32, [b, t, h * d]))
        let w = g.parameter("w", [b, t, h * d], initializer: .zeros, trainable: false)
        let qkv = g.scoped("qkv") { Linear(g, h * d, 3 * h * d)(x) }
        let split = qkv.reshape([b, t, 3, h, d]).permute([2, 0, 3, 1, 4])
        let (q, k, v) = (split.slice(axis: 0, 0..<1).reshape([b, h, t, d]), split.slice(axis: 0, 1..<2).reshape([b, h, t, d]),
                         split.slice(axis: 0, 2..<3).reshape([b, h, t, d]))
        let y = (q * (1 / Float(d).squareRoot())).matmul(k, transposeB: true).softmax().matmul(v)
            .permute([0, 2, 1, 3]).reshape([b, t, h * d])
        g.output("loss", (y * w).sumAll())
        return try g.build()
    }
}
