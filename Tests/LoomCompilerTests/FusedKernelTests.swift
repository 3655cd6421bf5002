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

/// Every fused kernel against its reference lowering: the primitive subgraph it replaces, run by
/// the reference executor. Each case builds the primitive pattern, runs `FusionPass`, checks that
/// the fused node is there, and compares the fused graph's outputs with the unfused ones (1e-5
/// relative); the fused graph must also give bit-identical results at 1 and 2 threads, and the
/// compiled plan (in-place reuse included) must agree with the fused graph.
final class FusedKernelTests: XCTestCase {
    // MARK: helpers

    /// The fused kernels of `graph`.
    static func kernels(_ graph: Graph) -> [FusedKernel] {
        graph.nodes.compactMap { node in
            if case .fused(let kernel) = node.op { return kernel }
            return nil
        }
    }

    /// Nodes that still launch work in `graph` and are reachable from its outputs (fills folded
    /// into an elementwise program stay behind as dead nodes until the next simplify).
    static func liveLaunches(_ graph: Graph) -> [Node] {
        var live = Set(graph.outputs.map(\.node))
        for node in graph.nodes.reversed() where live.contains(node.id) { live.formUnion(node.inputs) }
        return graph.nodes.filter { node in
            guard live.contains(node.id) else { return false }
            switch node.op {
            case .input, .parameter, .reshape, .stopGradient: return false
            default: return true
            }
        }
    }

    /// Runs fusion on `graph` and checks the fused graph against the unfused one. Kernels that
    /// call OpenBLAS (`gemm: true`) are compared across thread counts within 1e-6 rather than
    /// bit for bit: OpenBLAS's own sgemm rounds differently when it splits the work.
    @discardableResult
    func checkFusion(_ graph: Graph, inputs: [String: HostTensor], parameters: [String: HostTensor] = [:],
                     tolerance: Double = 1e-5, gemm: Bool = false, expect: (FusedKernel) -> Bool, _ label: String,
                     file: StaticString = #filePath, line: UInt = #line) throws -> Graph {
        let fused = try FusionPass().run(graph)
        XCTAssertTrue(Self.kernels(fused).contains(where: expect),
                      "\(label): the pattern was not fused:\n\(IRPrinter.print(fused))", file: file, line: line)
        let reference = try ReferenceExecutor(threads: 1).run(graph, inputs: inputs, parameters: parameters)
        let one = try ReferenceExecutor(threads: 1).run(fused, inputs: inputs, parameters: parameters)
        let two = try ReferenceExecutor(threads: 2).run(fused, inputs: inputs, parameters: parameters)
        let executor = try PlanExecutor(plan: try PlanLowering.lower(fused), threads: 2)
        try executor.setParameters(parameters)
        let planned = try executor.run(inputs: inputs)
        XCTAssertEqual(Set(one.keys), Set(reference.keys), label, file: file, line: line)
        for (name, value) in reference {
            guard let mine = one[name] else { continue }
            let error = GoldenCheck.relativeError(mine, value)
            XCTAssertLessThanOrEqual(error, tolerance, "\(label): output \(name), fused vs unfused", file: file, line: line)
            if gemm {
                XCTAssertLessThanOrEqual(GoldenCheck.relativeError(two[name]!, mine), 1e-6,
                                         "\(label): output \(name), 1 vs 2 threads", file: file, line: line)
            } else {
                XCTAssertTrue(two[name] == mine, "\(label): output \(name) differs between 1 and 2 threads",
                              file: file, line: line)
            }
            XCTAssertLessThanOrEqual(GoldenCheck.relativeError(planned[name] ?? HostTensor(shape: [0], floats: []), mine),
                                     tolerance, "\(label): output \(name), compiled plan vs fused graph",
                                     file: file, line: line)
        }
        return fused
    }

    // MARK: linear

    func linearGraph(rows: [Int], k: Int, n: Int, activation: UnaryFunction?) throws -> Graph {
        let b = GraphBuilder(name: "linear")
        let x = b.input("x", TensorType(.f32, rows + [k]))
        let y = b.scoped("fc") { () -> Tensor in
            let layer = Linear(b, k, n)
            let pre = layer(x)
            return activation.map { pre.unary($0) } ?? pre
        }
        b.output("y", y)
        return try b.build()
    }

    func testLinearEpilogues() throws {
        for activation in [nil, UnaryFunction.geluTanh, .silu] {
            for (rows, k, n) in [([5], 7, 3), ([2, 9], 33, 17), ([3, 41], 19, 300)] {
                let graph = try linearGraph(rows: rows, k: k, n: n, activation: activation)
                let inputs = ["x": TestTensors.random(rows + [k], seed: 1)]
                let parameters = ["fc.weight": TestTensors.random([n, k], seed: 2), "fc.bias": TestTensors.random([n], seed: 3)]
                let label = "linear \(rows)×\(k)→\(n) act \(activation?.rawValue ?? "none")"
                let fused = try checkFusion(graph, inputs: inputs, parameters: parameters, gemm: true,
                                            expect: { $0 == .linear(activation: activation) }, label)
                XCTAssertEqual(Self.liveLaunches(fused).map(\.op.mnemonic), ["linear"], label)
            }
        }
    }

    /// The activation stays outside the GEMM when its pre-activation is read elsewhere (as the
    /// backward pass of the activation does), and a remark says so.
    func testLinearActivationRefusedWhenPreActivationIsShared() throws {
        let b = GraphBuilder(name: "linear_shared")
        let x = b.input("x", TensorType(.f32, [4, 6]))
        let pre = b.scoped("fc") { Linear(b, 6, 5)(x) }
        b.output("act", pre.geluTanh())
        b.output("pre_sum", pre.sumAll())
        let graph = try b.build()
        let fused = try checkFusion(graph, inputs: ["x": TestTensors.random([4, 6], seed: 4)],
                                    parameters: ["fc.weight": TestTensors.random([5, 6], seed: 5),
                                                 "fc.bias": TestTensors.random([5], seed: 6)], gemm: true,
                                    expect: { $0 == .linear(activation: nil) }, "shared pre-activation")
        XCTAssertFalse(Self.kernels(fused).contains(.linear(activation: .geluTanh)))
        XCTAssertTrue(fused.remarks.contains { $0.hasPrefix("fusion refused: linear epilogue gelu_tanh")
                && $0.contains("pre-activation (add)") && $0.contains("read by 2 nodes") }, "\(fused.remarks)")
    }

    /// The same refusal when the pre-activation is a graph output: the fusion is refused, and the
    /// remark must say so too (refusals are never silent).
    func testLinearActivationRefusalRemarkWhenPreActivationIsAnOutput() throws {
        let b = GraphBuilder(name: "linear_output")
        let x = b.input("x", TensorType(.f32, [4, 6]))
        let pre = b.scoped("fc") { Linear(b, 6, 5)(x) }
        b.output("act", pre.geluTanh())
        b.output("pre", pre)
        let graph = try b.build()
        let fused = try FusionPass().run(graph)
        XCTAssertFalse(Self.kernels(fused).contains(.linear(activation: .geluTanh)))
        XCTAssertTrue(fused.remarks.contains { $0.hasPrefix("fusion refused: linear epilogue gelu_tanh") },
                      "no remark for the refused epilogue: \(fused.remarks)")
    }

    // MARK: norm + modulate

    func normModulateGraph(b batch: Int, t: Int, d: Int, rms: Bool, shareNorm: Bool = false) throws -> Graph {
        let g = GraphBuilder(name: "norm_modulate")
        let x = g.input("x", TensorType(.f32, [batch, t, d]))
        let shift = g.input("shift", TensorType(.f32, [batch, d]))
        let scale = g.input("scale", TensorType(.f32, [batch, d]))
        let h = g.scoped("norm") { TokenNorm(g, dim: d, rms: rms)(x) }
        g.output("y", modulate(h, shift: shift, scale: scale))
        if shareNorm { g.output("h_sum", h.sumAll()) }
        return try g.build()
    }

    func normInputs(b: Int, t: Int, d: Int) -> [String: HostTensor] {
        ["x": TestTensors.random([b, t, d], seed: 10, low: -3, high: 2), "shift": TestTensors.random([b, d], seed: 11),
         "scale": TestTensors.random([b, d], seed: 12)]
    }

    func testNormModulate() throws {
        for rms in [false, true] {
            for (b, t, d) in [(1, 1, 4), (2, 5, 7), (3, 17, 40), (2, 130, 129)] {
                let graph = try normModulateGraph(b: b, t: t, d: d, rms: rms)
                let parameters = rms ? ["norm.weight": TestTensors.random([d], seed: 13, low: 0.5, high: 1.5)] : [:]
                let label = "\(rms ? "rms_norm·weight" : "layer_norm") + modulate [\(b),\(t),\(d)]"
                let fused = try checkFusion(graph, inputs: normInputs(b: b, t: t, d: d), parameters: parameters,
                                            expect: { $0 == .normModulate(eps: TokenNorm.eps, rms: rms) }, label)
                XCTAssertEqual(Self.liveLaunches(fused).map(\.op.mnemonic), ["norm_modulate"], label)
            }
        }
    }

    /// A normalised value read elsewhere (here by a sum) keeps norm and modulate apart, with a
    /// remark that names the node and why.
    func testNormModulateRefusedWhenNormIsShared() throws {
        for rms in [false, true] {
            let (b, t, d) = (2, 3, 8)
            let graph = try normModulateGraph(b: b, t: t, d: d, rms: rms, shareNorm: true)
            let fused = try FusionPass().run(graph)
            XCTAssertFalse(Self.kernels(fused).contains { if case .normModulate = $0 { return true } else { return false } },
                           IRPrinter.print(fused))
            let remark = fused.remarks.first { $0.hasPrefix("fusion refused: norm_modulate") }
            XCTAssertNotNil(remark, "no remark: \(fused.remarks)")
            // The remark says which value is shared (by op, in its scope) and how often it is read.
            XCTAssertTrue(remark?.contains("normalised value (") == true && remark?.contains("read by 2 nodes") == true,
                          remark ?? "")
            XCTAssertTrue(IRPrinter.print(fused).contains("  // fusion refused: norm_modulate"))
            // Still correct, and the modulate arithmetic itself still becomes one elementwise kernel.
            let parameters = rms ? ["norm.weight": TestTensors.random([d], seed: 13, low: 0.5, high: 1.5)] : [:]
            try checkFusion(graph, inputs: normInputs(b: b, t: t, d: d), parameters: parameters,
                            expect: { if case .elementwise = $0 { return true } else { return false } },
                            "shared norm, rms \(rms)")
        }
    }

    /// The raw RMSNorm read elsewhere: the remark names the rms_norm node.
    func testRMSNormModulateRefusedWhenRawNormIsShared() throws {
        let g = GraphBuilder(name: "rms_shared")
        let x = g.input("x", TensorType(.f32, [2, 3, 8]))
        let shift = g.input("shift", TensorType(.f32, [2, 8]))
        let scale = g.input("scale", TensorType(.f32, [2, 8]))
        let w = g.input("w", TensorType(.f32, [8]))
        let raw = x.rmsNorm(eps: 1e-6)
        g.output("y", modulate(raw * w, shift: shift, scale: scale))
        g.output("raw", raw)
        let graph = try g.build()
        let fused = try FusionPass().run(graph)
        XCTAssertTrue(fused.remarks.contains { $0.hasPrefix("fusion refused: norm_modulate") && $0.contains("rms_norm value (rms_norm)")
                && ($0.contains("read by 2 nodes") || $0.contains("graph output")) }, "\(fused.remarks)")
    }

    /// A normalised value broadcast over the batch by modulate (x [1, T, D], shift and scale
    /// [B, D]) is a valid graph: fusion must leave it alone or fuse it correctly, not throw.
    func testNormModulateWithBatchBroadcastNorm() throws {
        let g = GraphBuilder(name: "norm_broadcast")
        let x = g.input("x", TensorType(.f32, [1, 3, 4]))
        let shift = g.input("shift", TensorType(.f32, [2, 4]))
        let scale = g.input("scale", TensorType(.f32, [2, 4]))
        g.output("y", modulate(x.layerNorm(eps: 1e-6), shift: shift, scale: scale))
        let graph = try g.build()
        let inputs = ["x": TestTensors.random([1, 3, 4], seed: 14), "shift": TestTensors.random([2, 4], seed: 15),
                      "scale": TestTensors.random([2, 4], seed: 16)]
        let fused: Graph
        do {
            fused = try FusionPass().run(graph)
        } catch {
            return XCTFail("fusion threw on a valid graph: \(error)")
        }
        let reference = try ReferenceExecutor(threads: 1).run(graph, inputs: inputs, parameters: [:])
        let mine = try ReferenceExecutor(threads: 1).run(fused, inputs: inputs, parameters: [:])
        XCTAssertLessThanOrEqual(GoldenCheck.relativeError(mine["y"]!, reference["y"]!), 1e-5)
    }

    // MARK: attention

    func testAttention() throws {
        for (b, h, t, s, d, e) in [(1, 1, 1, 1, 4, 4), (2, 3, 5, 5, 8, 8), (1, 2, 7, 11, 6, 9), (2, 2, 33, 33, 16, 16)] {
            let g = GraphBuilder(name: "attention")
            let q = g.input("q", TensorType(.f32, [b, h, t, d]))
            let k = g.input("k", TensorType(.f32, [b, h, s, d]))
            let v = g.input("v", TensorType(.f32, [b, h, s, e]))
            let scale = 1 / Float(d).squareRoot()
            g.output("out", (q * scale).matmul(k, transposeB: true).softmax().matmul(v))
            let graph = try g.build()
            let inputs = ["q": TestTensors.random([b, h, t, d], seed: 20, low: -2, high: 2),
                          "k": TestTensors.random([b, h, s, d], seed: 21, low: -2, high: 2),
                          "v": TestTensors.random([b, h, s, e], seed: 22)]
            let label = "attention q[\(b),\(h),\(t),\(d)] k[\(s)] v[\(e)]"
            let fused = try checkFusion(graph, inputs: inputs, gemm: true, expect: { $0 == .attention(scale: scale) }, label)
            XCTAssertEqual(Self.liveLaunches(fused).map(\.op.mnemonic), ["attention"], label)
        }
    }

    func testAttentionRefusedWhenProbabilitiesAreShared() throws {
        let g = GraphBuilder(name: "attention_shared")
        let q = g.input("q", TensorType(.f32, [1, 2, 3, 4]))
        let k = g.input("k", TensorType(.f32, [1, 2, 3, 4]))
        let v = g.input("v", TensorType(.f32, [1, 2, 3, 4]))
        let probs = (q * 0.5).matmul(k, transposeB: true).softmax()
        g.output("out", probs.matmul(v))
        g.output("probs", probs)
        let graph = try g.build()
        let fused = try FusionPass().run(graph)
        XCTAssertFalse(Self.kernels(fused).contains { if case .attention = $0 { return true } else { return false } })
        XCTAssertTrue(fused.remarks.contains { $0.hasPrefix("fusion refused: attention") && $0.contains("probabilities (softmax)")
                && ($0.contains("read by 2 nodes") || $0.contains("graph output")) }, "\(fused.remarks)")
    }

    // MARK: elementwise programs

    /// Builds `body` over inputs of the given shapes and checks that it becomes one
    /// `fused_elementwise` kernel (and nothing else launches) that matches the primitives.
    func checkElementwise(_ shapes: [[Int]], ranges: [(Float, Float)]? = nil, _ label: String,
                          file: StaticString = #filePath, line: UInt = #line,
                          _ body: (GraphBuilder, [Tensor]) -> Tensor) throws {
        let g = GraphBuilder(name: "elementwise")
        let operands = shapes.enumerated().map { g.input("in\($0.offset)", TensorType(.f32, $0.element)) }
        g.output("out", body(g, operands))
        let graph = try g.build()
        var inputs: [String: HostTensor] = [:]
        for (i, shape) in shapes.enumerated() {
            let (low, high) = ranges?[i] ?? (0.5, 2)
            inputs["in\(i)"] = TestTensors.random(shape, seed: 100 + UInt64(i), low: low, high: high)
        }
        let fused = try checkFusion(graph, inputs: inputs,
                                    expect: { if case .elementwise = $0 { return true } else { return false } },
                                    label, file: file, line: line)
        XCTAssertEqual(Self.liveLaunches(fused).map(\.op.mnemonic), ["fused_elementwise"],
                       "\(label):\n\(IRPrinter.print(fused))", file: file, line: line)
    }

    func testEveryUnaryFunctionInAChain() throws {
        // Operands in [0.5, 2] keep log, sqrt, rsqrt and recip in their domain.
        for f in UnaryFunction.allCases {
            try checkElementwise([[3, 5, 17], [5, 1]], "unary \(f.rawValue)") { g, x in
                let t = (x[0] * x[1]).affine(scale: 0.5, shift: 0.25)  // broadcast operand, affine
                let u = t.unary(f) * g.constant(1.5)                  // the function, a fill constant
                return u - x[1]
            }
        }
    }

    func testEveryBinaryFunctionInAChain() throws {
        for f in BinaryFunction.allCases {
            try checkElementwise([[4, 3, 67], [3, 1], []], ranges: [(-2, 2), (0.5, 2), (-1, 1)], "binary \(f.rawValue)") { g, x in
                let t = x[0].affine(scale: 2, shift: 0.1)
                let u = g.append(.binary(f), [t, x[1]])              // broadcast [3, 1]
                let v = g.append(.binary(f), [x[2], u])              // scalar operand on the left
                return (v.tanh() + g.constant(-0.75)) * x[0]
            }
        }
    }

    /// Inputs of rank 0 to 5, broadcasting operands of every kind (scalar, leading and inner
    /// unit axes), sizes that are not multiples of the 256-element tile, and one large enough
    /// to run on both threads.
    func testRanksAndBroadcasting() throws {
        let cases: [([Int], [Int], [Int])] = [
            ([], [], []),
            ([1], [], [1]),
            ([257], [1], [257]),
            ([5, 67], [67], [5, 1]),
            ([3, 1, 7], [1, 5, 1], [5, 7]),          // the result is larger than every operand
            ([2, 3, 5, 13], [3, 1, 13], [2, 1, 5, 1]),
            ([2, 3, 1, 5, 29], [3, 7, 1, 1], [1, 1, 7, 5, 29]),
            ([3, 41, 67], [41, 1], [3, 1, 67]),      // 8241 elements: several tiles per thread
        ]
        for (a, b, c) in cases {
            try checkElementwise([a, b, c], ranges: [(-1, 1), (0.5, 2), (-2, 2)], "shapes \(a) \(b) \(c)") { g, x in
                let s = (x[0] + x[1]) * x[2]
                let u = (s / x[1]).silu().maximum(g.constant(-0.1))
                return u.affine(scale: -1, shift: 3) * x[0]
            }
        }
    }

    /// A long chain with many distinct fill constants: every instruction and constant needs a
    /// register of its own, so the program must stay within the kernel's register file (or not be
    /// fused).
    func testLongChainWithManyConstants() throws {
        let g = GraphBuilder(name: "constants")
        let x = g.input("x", TensorType(.f32, [3, 100]))
        var t = x
        for i in 0..<22 {
            t = (t * g.constant(1 + Float(i) / 64)).maximum(g.constant(-Float(i) / 8))
        }
        g.output("out", t)
        let graph = try g.build()
        let inputs = ["x": TestTensors.random([3, 100], seed: 30)]
        let fused = try FusionPass().run(graph)
        for node in fused.nodes {
            if case .fused(.elementwise(let program)) = node.op {
                XCTAssertLessThanOrEqual(program.registerCount, 64,
                                         "program of %\(node.id) needs \(program.registerCount) registers: \(program.text)")
            }
        }
        let reference = try ReferenceExecutor(threads: 1).run(graph, inputs: inputs, parameters: [:])
        let mine = try ReferenceExecutor(threads: 1).run(fused, inputs: inputs, parameters: [:])
        XCTAssertLessThanOrEqual(GoldenCheck.relativeError(mine["out"]!, reference["out"]!), 1e-5)
    }

    /// An intermediate read twice is not absorbed: it stays a value of its own and both chains
    /// read it.
    func testSharedIntermediateIsNotAbsorbed() throws {
        let g = GraphBuilder(name: "shared")
        let x = g.input("x", TensorType(.f32, [4, 9]))
        let shared = x.exp() * x
        g.output("a", shared.tanh() + 1)
        g.output("b", shared.sigmoid() * 2)
        let graph = try g.build()
        let fused = try checkFusion(graph, inputs: ["x": TestTensors.random([4, 9], seed: 31)],
                                    expect: { if case .elementwise = $0 { return true } else { return false } },
                                    "shared intermediate")
        let sharedNew = fused.nodes.filter { node in
            fused.nodes.filter { $0.inputs.contains(node.id) }.count == 2
        }
        XCTAssertEqual(sharedNew.count, 1, IRPrinter.print(fused))
        XCTAssertEqual(Self.kernels(fused).count, 3, IRPrinter.print(fused))
    }
}
