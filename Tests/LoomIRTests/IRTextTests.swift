import LoomTestSupport
import XCTest
@testable import LoomIR

/// Print → parse round trips and golden text.
final class IRTextTests: XCTestCase {
    // MARK: helpers

    /// Asserts print → parse → print is the identity and parse(print(g)) == g.
    private func assertRoundTrip(_ graph: Graph, file: StaticString = #filePath, line: UInt = #line) throws {
        let text = IRPrinter.print(graph)
        let parsed = try IRParser.parse(text, source: "\(graph.name).loomir")
        XCTAssertEqual(IRPrinter.print(parsed), text, "print(parse(print(g))) differs", file: file, line: line)
        XCTAssertEqual(parsed, graph, "parse(print(g)) != g", file: file, line: line)
    }

    private var allMnemonics: [String] {
        ["input", "param", "buffer", "constant", "iota"]
            + UnaryFunction.allCases.map(\.rawValue)
            + ["affine"]
            + BinaryFunction.allCases.map(\.rawValue)
            + ["matmul"]
            + ReduceFunction.allCases.map { "reduce_" + $0.rawValue }
            + ["softmax", "layer_norm", "rms_norm", "reshape", "permute", "slice", "concat", "broadcast",
               "gather", "scatter_add", "patchify", "unpatchify", "rotate_pairs", "conv2d", "cast", "stop_gradient",
               "fused_elementwise", "linear", "norm_modulate", "attention"]
    }

    /// A graph that uses every op, every initializer, scalars, integers and scoped blocks.
    private func everyOpGraph() throws -> Graph {
        let b = GraphBuilder(name: "every_op")
        let x = b.input("x", TensorType(.f32, [2, 4, 8, 8]))
        let labels = b.input("labels", TensorType(.i64, [2]))
        let t = b.input("t", TensorType(.f32, [2]))
        let proj = b.scoped("x_embedder.proj") {
            b.parameter("weight", [16, 32], initializer: .xavierUniform(fanIn: 16, fanOut: 32))
        }
        let bias = b.scoped("x_embedder.proj") { b.parameter("bias", [32], initializer: .zeros) }
        let pos = b.parameter("pos_embed", [1, 16, 32], initializer: .sinCos2D(gridH: 4, gridW: 4),
                              trainable: false)
        let ropeCos = b.parameter("rope_cos", [16, 32], initializer: .ropeCos(gridH: 4, gridW: 4), trainable: false)
        let ropeSin = b.parameter("rope_sin", [16, 32], initializer: .ropeSin(gridH: 4, gridW: 4), trainable: false)
        let table = b.scoped("y_embedder") { b.parameter("table", [10, 32], initializer: .normal(std: 0.02)) }
        let gain = b.parameter("gain", [32], initializer: .ones)

        let negZero = b.constant(-0.0)
        let tiny = b.constant(1e-6, shape: [1])
        let huge = b.constant(3.4028235e+38)
        let odd = b.constant(-9.2103405, shape: [2, 1, 1])
        let steps = b.iota(shape: [16, 32], axis: 0)

        var h = x.patchify(2).matmul(proj) + bias + pos               // [2,16,32]
        h = h * ropeCos + h.rotatePairs() * ropeSin
        h = b.scoped("blocks.0") {
            var y = b.scoped("attn") {
                let q = h.layerNorm(eps: 1e-6)
                let k = h.rmsNorm(eps: 1e-5)
                let s = q.matmul(k, transposeB: true).affine(scale: 0.17677669, shift: -0.0).softmax()
                return s.matmul(h)
            }
            y = y + h
            let heads = y.reshape([2, 16, 4, 8]).permute([0, 2, 1, 3])
            let back = heads.permute([0, 2, 1, 3]).reshape([2, 16, 32])
            let gram = back.matmul(back, transposeA: true)                  // [2,32,32]
            let pooled = gram.mean(axes: [1, 2], keepDims: true)            // [2,1,1]
            return back + pooled * odd
        }
        var u = h
        for f in UnaryFunction.allCases { u = u.unary(f) }
        for f in BinaryFunction.allCases { u = b.append(.binary(f), [u, h]) }
        let summed = u.sum(axes: [2])                                      // [2,16]
        let maxed = u.max(axes: [1], keepDims: true)                       // [2,1,32]
        let halves = h.chunk(2, axis: -1)
        let joined = concat([halves[1], halves[0], steps.broadcast(to: [2, 16, 32]).slice(axis: 2, 0..<0)], axis: 2)
        let emb = table.gather(labels)                                     // [2,32]
        let grad = emb.scatterAdd(labels, rows: 10)                        // [10,32]
        let cond = (emb * gain).reshape([2, 1, 32]).broadcast(to: [2, 16, 32])
        let tokens = (joined + cond + maxed).stopGradient()
        let out = tokens.reshape([2, 16, 2, 16]).slice(axis: 2, 0..<1).reshape([2, 16, 16]).unpatchify(2, gridH: 4, gridW: 4)
        let scalar = (t.sumAll() + negZero) * tiny + huge
        let index = labels.cast(.f32).cast(.i32)
        b.output("out", out)
        b.output("summed", summed)
        b.output("scalar", scalar)
        b.output("index", index)
        b.output("table_grad", grad)
        // Fused kernels (made by the fusion pass; traced here directly to cover their text form).
        let program = try ElementwiseProgram.parse("mul(r0,r1);affine(r2,0.5,1.0);gelu_tanh(r3);const(-2.5);max(r4,r5)",
                                                   inputCount: 2)
        let chain = b.append(.fused(.elementwise(program)), [h, gain])
        let linearBias = pos.reshape([16, 32]).slice(axis: 1, 0..<1).reshape([16])
        let projected = b.append(.fused(.linear(activation: .silu)), [chain, proj, linearBias])
        let plainLinear = b.append(.fused(.linear(activation: nil)), [chain, proj, linearBias])
        let modulated = b.append(.fused(.normModulate(eps: 1e-6, rms: false)), [h, emb, emb])
        let rmsModulated = b.append(.fused(.normModulate(eps: 1e-6, rms: true)), [h, gain, emb, emb])
        let heads = h.reshape([2, 16, 4, 8]).permute([0, 2, 1, 3])
        let attended = b.append(.fused(.attention(scale: 0.35355339)), [heads, heads, heads])
        b.output("fused", projected + plainLinear)
        b.output("modulated", modulated + rmsModulated)
        b.output("attended", attended)
        let convWeight = b.parameter("conv.weight", [3, 4, 3, 3], initializer: .normal(std: 0.1))
        let convBias = b.parameter("conv.bias", [3], initializer: .zeros)
        b.output("convolved", x.conv2d(convWeight, convBias, stride: 2, padding: [0, 0, 1, 1]))  // [2,3,4,4]
        return try b.build()
    }

    // MARK: round trips

    func testEveryOpRoundTrips() throws {
        try assertRoundTrip(try everyOpGraph())
    }

    func testEveryOpKindIsPrinted() throws {
        let graph = try everyOpGraph()
        let kinds = Set(graph.nodes.map { OpKinds.kind($0.op) })
        let text = IRPrinter.print(graph)
        for mnemonic in allMnemonics {
            XCTAssertTrue(kinds.contains(mnemonic), "no \(mnemonic) node in the test graph")
            XCTAssertTrue(text.contains(" = \(mnemonic) ") || text.contains(" = \(mnemonic)("),
                          "\(mnemonic) not printed")
        }
    }

    func testScalarsIntegersAndOddFloatsRoundTrip() throws {
        let b = GraphBuilder(name: "scalars")
        let ids = b.input("ids", TensorType(.i64, [3]))
        let table = b.parameter("table", [5, 2], initializer: .normal(std: 1e-3))
        let values: [Float] = [-0.0, 0, 1e-6, 3.4028235e+38, -3.4028235e+38, .infinity, -.infinity,
                               .leastNonzeroMagnitude, 0.1, 1.0 / 3.0, -7]
        var acc = b.constant(1, shape: [])
        for v in values { acc = acc + b.constant(v) }
        b.output("rows", table.gather(ids))
        b.output("acc", acc.affine(scale: -0.0, shift: 1e-30))
        b.output("ids_i32", ids.cast(.i32))
        let graph = try b.build()
        try assertRoundTrip(graph)
        let parsed = try IRParser.parse(IRPrinter.print(graph))
        for (a, p) in zip(graph.nodes, parsed.nodes) {
            if case .constant(let va) = a.op, case .constant(let vp) = p.op {
                XCTAssertEqual(va.bitPattern, vp.bitPattern)
            }
        }
    }

    func testNaNConstantRoundTripsAsText() throws {
        let b = GraphBuilder(name: "nan")
        let x = b.input("x", TensorType(.f32, [2]))
        b.output("y", x + b.constant(.nan) + b.constant(.infinity).affine(scale: .nan, shift: -.infinity))
        let graph = try b.build()
        let text = IRPrinter.print(graph)
        XCTAssertTrue(text.contains("%1 = constant nan : f32[]"), text)
        XCTAssertTrue(text.contains("affine(%3) scale=nan shift=-inf"), text)
        let parsed = try IRParser.parse(text)
        XCTAssertEqual(IRPrinter.print(parsed), text)
        guard case .constant(let v) = parsed.nodes[1].op else { return XCTFail("not a constant") }
        XCTAssertTrue(v.isNaN)
    }

    func testOriginsNamesAndScopesRoundTrip() throws {
        let b = GraphBuilder(name: "grad-of.sit")
        let x = b.input("x \"quoted\" \\ back\tslash\nnewline", TensorType(.f32, [2, 3]))
        let w = b.scoped("blocks.7.mlp") { b.parameter("fc1.weight", [3, 3], initializer: .zeros) }
        let y = b.scoped("blocks.7.mlp") { x.matmul(w).silu() }
        let z = y.neg()
        b.output("y out", y)
        b.output("z", z)
        b.output("x", x)
        var graph = try b.build()
        graph.nodes[3].origin = 2                       // scoped node with an origin
        graph.nodes[4].origin = 3                       // top-level node with an origin
        graph.nodes[2].origin = 4                       // origins may point forward
        graph.nodes[1].scope = "  odd <- scope # "      // needs quoting to read back verbatim
        try assertRoundTrip(graph)
        let text = IRPrinter.print(graph)
        XCTAssertTrue(text.contains("%3 = silu(%2) : f32[2,3]  # blocks.7.mlp <- %2\n"), text)
        XCTAssertTrue(text.contains("%4 = neg(%3) : f32[2,3]  # <- %3\n"), text)
        XCTAssertTrue(text.contains("graph grad-of.sit {"), text)
        XCTAssertTrue(text.contains("return \"y out\" = %3, z = %4, x = %0\n}\n"), text)
    }

    func testEmptyGraphAndEmptyOutputs() throws {
        try assertRoundTrip(Graph(name: "empty"))
        XCTAssertEqual(IRPrinter.print(Graph(name: "empty")), "graph empty {\n  return\n}\n")
        let b = GraphBuilder(name: "no_outputs")
        _ = b.input("x", TensorType(.f32, []))
        try assertRoundTrip(try b.build())
    }

    func testRolesAreRecomputed() throws {
        let graph = try everyOpGraph()
        let parsed = try IRParser.parse(IRPrinter.print(graph))
        XCTAssertEqual(parsed.nodes.map(\.role), graph.nodes.map(\.role))
        XCTAssertTrue(parsed.nodes.contains { $0.role == .buffer })
        XCTAssertTrue(parsed.nodes.contains { $0.role == .output })
    }

    func testParserIgnoresBlankAndSlashCommentLines() throws {
        let text = """
        // a hand-written graph

        graph tiny {
          // the input
          %0 = input "x" : f32[2,3]

          %1 = silu(%0) : f32[2,3]  #   act\t
          return y = %1
        }
        // trailing comment
        """
        let graph = try IRParser.parse(text)
        XCTAssertEqual(graph.nodes.count, 2)
        XCTAssertEqual(graph.nodes[1].scope, "act")
        XCTAssertEqual(graph.nodes[1].role, .output)
    }

    // MARK: golden text

    func testGoldenTinyGraph() throws {
        let b = GraphBuilder(name: "tiny")
        let x = b.input("x", TensorType(.f32, [2, 3]))
        let y = b.scoped("act") { x.silu() }
        b.output("y", y)
        let expected = """
        graph tiny {
          %0 = input "x" : f32[2,3]
          %1 = silu(%0) : f32[2,3]  # act
          return y = %1
        }

        """
        XCTAssertEqual(IRPrinter.print(try b.build()), expected)
    }

    func testGoldenAttributes() throws {
        let b = GraphBuilder(name: "sit_forward")
        let x = b.input("x", TensorType(.f32, [48, 16]))
        let w = b.scoped("x_embedder.proj") {
            b.parameter("weight", [64, 16], initializer: .xavierUniform(fanIn: 16, fanOut: 64))
        }
        let pos = b.parameter("pos_embed", [1, 16, 64], initializer: .sinCos2D(gridH: 4, gridW: 4), trainable: false)
        let half = b.constant(0.5)
        let steps = b.iota(shape: [128], axis: 0)
        let h = b.scoped("blocks.0.attn.qkv") { x.matmul(w, transposeB: true) }
        let m = h.mean(axes: [0, 1], keepDims: true).affine(scale: -9.2103405, shift: 0)
        let s = h.slice(axis: 1, 0..<32)
        let c = concat([s, s], axis: 1)
        let g = b.scoped("blocks.0.mlp") { c.geluTanh() }
        b.output("out_final", g)
        b.output("out_inter", c)
        _ = (pos, half, steps, m)
        let expected = """
        graph sit_forward {
          %0 = input "x" : f32[48,16]
          %1 = param "x_embedder.proj.weight" init=xavier_uniform(16,64) : f32[64,16]  # x_embedder.proj
          %2 = buffer "pos_embed" init=sincos_2d(4,4) : f32[1,16,64]
          %3 = constant 0.5 : f32[]
          %4 = iota axis=0 : f32[128]
          %5 = matmul(%0, %1) transpose_b : f32[48,64]  # blocks.0.attn.qkv
          %6 = reduce_mean(%5) axes=[0,1] keep_dims : f32[1,1]
          %7 = affine(%6) scale=-9.2103405 shift=0.0 : f32[1,1]
          %8 = slice(%5) axis=1 start=0 end=32 : f32[48,32]
          %9 = concat(%8, %8) axis=1 : f32[48,64]
          %10 = gelu_tanh(%9) : f32[48,64]  # blocks.0.mlp
          return out_final = %10, out_inter = %9
        }

        """
        let graph = try b.build()
        XCTAssertEqual(IRPrinter.print(graph), expected)
        XCTAssertEqual(try IRParser.parse(expected), graph)
    }
}
