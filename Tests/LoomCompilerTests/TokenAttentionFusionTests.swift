import Foundation
import LoomCompiler
import LoomData
import LoomDiffusion
import LoomIR
import LoomRuntime
import LoomTestSupport
import LoomTraining
import XCTest

/// `token_attention`: the head split and merge around attention folded into one kernel that reads
/// q, k, v from the qkv projection's rows and writes token-major rows.
extension FusedKernelTests {
    /// qkv [B, T, 3·H·d] → the DiT head split, scaled attention, head merge → [B, T, H·d].
    static func headSplitAttention(batch b: Int, tokens t: Int, heads h: Int, depth d: Int, shareScores: Bool = false) throws -> Graph {
        let g = GraphBuilder(name: "token_attention")
        let qkv = g.input("qkv", TensorType(.f32, [b, t, 3 * h * d]))
        let split = qkv.reshape([b, t, 3, h, d]).permute([2, 0, 3, 1, 4])
        let (q, k, v) = (split.slice(axis: 0, 0..<1).reshape([b, h, t, d]), split.slice(axis: 0, 1..<2).reshape([b, h, t, d]),
                         split.slice(axis: 0, 2..<3).reshape([b, h, t, d]))
        let attended = (q * (1 / Float(d).squareRoot())).matmul(k, transposeB: true).softmax().matmul(v)
        g.output("y", attended.permute([0, 2, 1, 3]).reshape([b, t, h * d]))
        if shareScores { g.output("k", k) }
        return try g.build()
    }

    func testTokenAttentionReadsTheQKVRowsDirectly() throws {
        for (b, t, h, d) in [(1, 1, 1, 4), (2, 5, 3, 8), (2, 33, 2, 16), (1, 64, 6, 64)] {
            let graph = try Self.headSplitAttention(batch: b, tokens: t, heads: h, depth: d)
            let inputs = ["qkv": TestTensors.random([b, t, 3 * h * d], seed: 30, low: -2, high: 2)]
            let label = "token_attention qkv[\(b),\(t),3·\(h)·\(d)]"
            let fused = try checkFusion(graph, inputs: inputs, gemm: true,
                                        expect: { $0 == .tokenAttention(heads: h, scale: 1 / Float(d).squareRoot()) }, label)
            XCTAssertEqual(Self.liveLaunches(fused).map(\.op.mnemonic), ["token_attention"], label)
        }
    }

    func testTokenAttentionLeavesASharedHeadSplitAlone() throws {
        // k is also a graph output: the split must stay, and plain attention still fuses.
        let graph = try Self.headSplitAttention(batch: 1, tokens: 4, heads: 2, depth: 4, shareScores: true)
        let fused = try FusionPass().run(graph)
        let kinds = Self.kernels(fused)
        XCTAssertFalse(kinds.contains { if case .tokenAttention = $0 { return true } else { return false } }, "\(kinds)")
        XCTAssertTrue(kinds.contains(.attention(scale: 0.5)), "\(kinds)")
    }

    func testTokenAttentionRoundTripsThroughIRText() throws {
        let graph = try FusionPass().run(try Self.headSplitAttention(batch: 1, tokens: 4, heads: 2, depth: 4))
        let text = IRPrinter.print(graph)
        XCTAssertTrue(text.contains("token_attention(%0) heads=2 scale=0.5 : f32[1,4,8]"), text)
        XCTAssertEqual(IRPrinter.print(try IRParser.parse(text)), text)
    }
}
