import LoomCompiler
import LoomData
import LoomDiffusion
import LoomGraphs
import LoomIR
import LoomTestSupport
import LoomTraining
import XCTest

final class CostModelTests: XCTestCase {
    private func f32(_ shape: [Int]) -> TensorType { TensorType(.f32, shape) }

    /// The DiT paper's "Gflops" (Table 4) are multiply-accumulates of one forward pass at 256 tokens.
    func testForwardMACsMatchDiTPaper() throws {
        let paper: [(ModelPreset, Double)] = [(.S, 6.06), (.B, 23.01), (.L, 80.71), (.XL, 118.64)]
        for (preset, expected) in paper {
            let model = try DiffusionTransformer(.preset(.dit, preset, patch: 2))
            let graph = try model.forwardGraph(batch: 1)
            let total = CostModel.total(of: graph)
            let gmacs = Double(total.macs) / 1e9
            print(String(format: "DiT-%@/2 forward: %.3f GMACs (paper %.2f), %.3f GFLOPs", preset.rawValue, gmacs,
                         expected, Double(total.flops) / 1e9))
            XCTAssertEqual(gmacs, expected, accuracy: expected * 0.005, "DiT-\(preset.rawValue)/2")
            XCTAssertGreaterThan(total.flops, 2 * total.macs)
        }
    }

    func testMatmulCountsTransposesAndBroadcastBatch() {
        // [2, 3, 5, 7] × [7, 11] (batch broadcast) → [2, 3, 5, 11], K = 7.
        let plain = CostModel.cost(of: .matmul(transposeA: false, transposeB: false),
                                   operands: [f32([2, 3, 5, 7]), f32([7, 11])], result: f32([2, 3, 5, 11]))
        XCTAssertEqual(plain.macs, 2 * 3 * 5 * 11 * 7)
        XCTAssertEqual(plain.flops, 2 * plain.macs)
        XCTAssertEqual(plain.bytesRead, 4 * (2 * 3 * 5 * 7 + 7 * 11))
        XCTAssertEqual(plain.bytesWritten, 4 * 2 * 3 * 5 * 11)
        // Aᵀ: A is [.., K, M] = [4, 7, 5], B [4, 7, 11] → [4, 5, 11].
        let ta = CostModel.cost(of: .matmul(transposeA: true, transposeB: false),
                                operands: [f32([4, 7, 5]), f32([4, 7, 11])], result: f32([4, 5, 11]))
        XCTAssertEqual(ta.macs, 4 * 5 * 11 * 7)
        // Bᵀ: a linear [N, T, in] × [out, in]ᵀ.
        let linear = CostModel.cost(of: .matmul(transposeA: false, transposeB: true),
                                    operands: [f32([2, 16, 8]), f32([24, 8])], result: f32([2, 16, 24]))
        XCTAssertEqual(linear.macs, 2 * 16 * 24 * 8)
    }

    func testElementwiseConstants() {
        let x = f32([4, 10])
        XCTAssertEqual(CostModel.cost(of: .unary(.exp), operands: [x], result: x),
                       NodeCost(macs: 0, flops: 40, bytesRead: 160, bytesWritten: 160))
        XCTAssertEqual(CostModel.cost(of: .binary(.add), operands: [x, f32([10])], result: x).flops, 40)
        XCTAssertEqual(CostModel.cost(of: .binary(.add), operands: [x, f32([10])], result: x).bytesRead, 200)
        XCTAssertEqual(CostModel.cost(of: .affine(scale: 2, shift: 1), operands: [x], result: x).flops, 40)
        XCTAssertEqual(CostModel.cost(of: .softmax, operands: [x], result: x).flops, 5 * 40)
        XCTAssertEqual(CostModel.cost(of: .layerNorm(eps: 1e-6), operands: [x], result: x).flops, 8 * 40)
        XCTAssertEqual(CostModel.cost(of: .rmsNorm(eps: 1e-6), operands: [x], result: x).flops, 6 * 40)
        XCTAssertEqual(CostModel.cost(of: .reduce(.sum, axes: [1], keepDims: false), operands: [x],
                                      result: f32([4])).flops, 40)
        XCTAssertEqual(CostModel.cost(of: .reduce(.mean, axes: [1], keepDims: false), operands: [x],
                                      result: f32([4])).flops, 44)
        for op: Op in [.permute(perm: [1, 0]), .broadcast(shape: [4, 10]), .rotatePairs, .cast(to: .f32)] {
            let c = CostModel.cost(of: op, operands: [x], result: x)
            XCTAssertEqual(c.macs + c.flops, 0, op.mnemonic)
            XCTAssertEqual(c.bytesWritten, 160, op.mnemonic)
        }
        XCTAssertEqual(CostModel.cost(of: .reshape(shape: [40]), operands: [x], result: f32([40])), .zero)
        XCTAssertEqual(CostModel.cost(of: .parameter(name: "w", initializer: .zeros, trainable: true),
                                      operands: [], result: x), .zero)
        XCTAssertEqual(CostModel.cost(of: .constant(value: 0), operands: [], result: x).bytesWritten, 160)
        let slice = CostModel.cost(of: .slice(axis: 1, start: 0, end: 5), operands: [x], result: f32([4, 5]))
        XCTAssertEqual(slice.bytesRead, 80)
        let gather = CostModel.cost(of: .gather, operands: [f32([1000, 16]), TensorType(.i64, [4])],
                                    result: f32([4, 16]))
        XCTAssertEqual(gather.bytesRead, 4 * 8 + 4 * 16 * 4)
        XCTAssertEqual(CostModel.cost(of: .scatterAdd(rows: 100), operands: [TensorType(.i64, [4]), f32([4, 16])],
                                      result: f32([100, 16])).flops, 64)
    }

    func testTotalsAddUpAndOnlyMatmulsHaveMACs() throws {
        let config = ModelConfig(backbone: .lightningdit, inputSize: 8, inChannels: 4, learnSigma: false, patch: 2,
                                 hidden: 32, depth: 2, heads: 2, numClasses: 10, igLayer: 1)
        let graph = try DiffusionTransformer(config).forwardGraph(batch: 2)
        let costs = CostModel.costs(of: graph)
        XCTAssertEqual(costs.count, graph.nodes.count)
        XCTAssertEqual(costs.reduce(NodeCost.zero, +), CostModel.total(of: graph))
        for (node, cost) in zip(graph.nodes, costs) {
            if case .matmul = node.op { XCTAssertGreaterThan(cost.macs, 0) } else { XCTAssertEqual(cost.macs, 0) }
        }
        let byOp = CostModel.totalsByOp(of: graph)
        XCTAssertEqual(byOp["matmul"]?.macs, CostModel.total(of: graph).macs)
        XCTAssertEqual(byOp.values.reduce(NodeCost.zero, +), CostModel.total(of: graph))
    }

    func testFusedKernelsCostWhatTheyReplace() {
        let linear = CostModel.cost(of: .fused(.linear(activation: .geluTanh)),
                                    operands: [f32([2, 16, 8]), f32([24, 8]), f32([24])], result: f32([2, 16, 24]))
        XCTAssertEqual(linear.macs, 2 * 16 * 24 * 8)
        XCTAssertEqual(linear.flops, 2 * linear.macs + 2 * 2 * 16 * 24)
        // q [1, 2, 16, 4], k/v [1, 2, 16, 4]: two 1·2·16·16·4 matmuls.
        let qkv = f32([1, 2, 16, 4])
        let attention = CostModel.cost(of: .fused(.attention(scale: 0.5)), operands: [qkv, qkv, qkv], result: qkv)
        XCTAssertEqual(attention.macs, 2 * (2 * 16 * 16 * 4))
        XCTAssertEqual(attention.bytesWritten, qkv.byteCount)
    }
}
