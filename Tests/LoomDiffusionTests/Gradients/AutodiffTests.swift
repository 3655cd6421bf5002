import Foundation
import LoomCompiler
import LoomData
import LoomDiffusion
import LoomGraphs
import LoomIR
import LoomRuntime
import LoomTestSupport
import XCTest

/// Pass-level behaviour of `Autodiff.differentiate`: accumulation, stop_gradient, parameters off the
/// loss path, origin/scope bookkeeping, errors, and a whole-model finite-difference check.
final class AutodiffTests: XCTestCase {
    private let executor = ReferenceExecutor(threads: 1)

    /// Builds a graph with `loss` (and whatever else `body` outputs), differentiates and runs it.
    private func gradients(_ parameters: [String: HostTensor], inputs: [String: HostTensor] = [:],
                           _ body: (GraphBuilder) -> Void) throws -> (Graph, [String: HostTensor]) {
        let b = GraphBuilder(name: "autodiff_test")
        body(b)
        let graph = try Autodiff.differentiate(try b.build(), loss: "loss")
        return (graph, try executor.run(graph, inputs: inputs, parameters: parameters))
    }

    private func assertClose(_ actual: [Float]?, _ expected: [Float], tolerance: Float = 1e-5,
                             _ message: String, file: StaticString = #filePath, line: UInt = #line) {
        guard let actual else { return XCTFail("\(message): missing", file: file, line: line) }
        XCTAssertEqual(actual.count, expected.count, message, file: file, line: line)
        for (i, (a, e)) in zip(actual, expected).enumerated() where abs(a - e) > tolerance * max(1, abs(e)) {
            XCTFail("\(message)[\(i)]: \(a), expected \(e)", file: file, line: line)
        }
    }

    private static let p: [Float] = [0.3, -1.2, 0.7, 2.0, -0.4, 1.1]
    private static let q: [Float] = [-0.5, 0.9, 1.4, -0.8, 0.2, -1.6]

    // MARK: accumulation

    func testValueUsedTwiceAccumulates() throws {
        let p = Self.p
        let params = ["p": HostTensor(shape: [2, 3], floats: p)]
        // x·x: both operands of one mul are the same node.
        let (_, square) = try gradients(params) { b in
            let x = b.parameter("p", [2, 3], initializer: .zeros)
            b.output("loss", (x * x).sumAll())
        }
        assertClose(square["grad.p"]?.floats, p.map { 2 * $0 }, "d/dp Σ p·p")

        // x feeding two branches that meet again, and a third use through a reduction.
        let (_, branches) = try gradients(params) { b in
            let x = b.parameter("p", [2, 3], initializer: .zeros)
            let left = x.exp(), right = x.sin() * x
            b.output("loss", (left + right).sumAll() + x.sum(axes: [1]).square().sumAll())
        }
        let rowSums = [p[0] + p[1] + p[2], p[3] + p[4] + p[5]]
        let expected = p.enumerated().map { i, v in
            exp(v) + cos(v) * v + sin(v) + 2 * rowSums[i / 3]
        }
        assertClose(branches["grad.p"]?.floats, expected, "d/dp of exp(p) + sin(p)·p + Σ(row sums)²")

        // The same checks through the finite-difference harness.
        GradientCheckHarness.assertCases([
            GradientCase("x·x", covers: ["mul"]) { c in
                let x = c.param("p", [2, 3])
                return x * x
            },
            GradientCase("one value, two branches", covers: ["exp", "sin"]) { c in
                let x = c.param("p", [2, 3])
                return x.exp() + x.sin() * x
            },
            GradientCase("x feeding both matmul operands and a bias", covers: ["matmul"]) { c in
                let x = c.param("p", [3, 3])
                return x.matmul(x) + x
            },
        ])
    }

    // MARK: stop_gradient and parameters off the path

    func testStopGradientBlocksGradients() throws {
        let params = ["p": HostTensor(shape: [6], floats: Self.p), "q": HostTensor(shape: [6], floats: Self.q)]
        let (graph, grads) = try gradients(params) { b in
            let p = b.parameter("p", [6], initializer: .zeros), q = b.parameter("q", [6], initializer: .zeros)
            let frozen = p.stopGradient()
            b.output("loss", (frozen * q).sumAll() + frozen.exp().sumAll())
        }
        XCTAssertEqual(grads["grad.p"]?.floats, [Float](repeating: 0, count: 6), "nothing flows through stop_gradient")
        assertClose(grads["grad.q"]?.floats, Self.p, "the stopped value still scales the other operand")
        // No backward node stems from the exp on the stopped branch.
        let forwardCount = graph.nodes.firstIndex { $0.origin != nil } ?? graph.nodes.count
        let expNode = graph.nodes[..<forwardCount].first { $0.op == .unary(.exp) }!.id
        XCTAssertFalse(graph.nodes[forwardCount...].contains { $0.origin == expNode },
                       "backward nodes were emitted for a node behind stop_gradient")
    }

    func testParameterOffTheLossPathGetsZeroGradient() throws {
        let params: [String: HostTensor] = [
            "p": HostTensor(shape: [6], floats: Self.p), "aux": HostTensor(shape: [2, 2], floats: [1, 2, 3, 4]),
            "unused": HostTensor(shape: [3], floats: [1, 2, 3]), "frozen": HostTensor(shape: [6], floats: Self.q),
            "buf": HostTensor(shape: [6], floats: Self.q),
        ]
        func body(_ b: GraphBuilder) {
            let p = b.parameter("p", [6], initializer: .zeros)
            let aux = b.parameter("aux", [2, 2], initializer: .zeros)
            _ = b.parameter("unused", [3], initializer: .zeros)
            let frozen = b.parameter("frozen", [6], initializer: .zeros)
            let buf = b.parameter("buf", [6], initializer: .zeros, trainable: false)
            b.output("other", aux.exp())
            b.output("loss", (p * buf + frozen.stopGradient()).sumAll())
        }
        let (graph, grads) = try gradients(params, body)
        XCTAssertEqual(Set(graph.outputs.map(\.name)),
                       ["other", "loss", "grad.p", "grad.aux", "grad.unused", "grad.frozen"])
        XCTAssertEqual(grads["grad.aux"], HostTensor(zeros: TensorType(.f32, [2, 2])), "used only by another output")
        XCTAssertEqual(grads["grad.unused"], HostTensor(zeros: TensorType(.f32, [3])), "never used")
        XCTAssertEqual(grads["grad.frozen"], HostTensor(zeros: TensorType(.f32, [6])), "used only behind stop_gradient")
        assertClose(grads["grad.p"]?.floats, Self.q, "d/dp Σ p·buf")

        // Restricting the pass to some parameters emits only their gradients.
        let b = GraphBuilder(name: "subset")
        body(b)
        let forward = try b.build()
        let subset = try Autodiff.differentiate(forward, loss: "loss", parameters: ["aux", "p"])
        XCTAssertEqual(subset.outputs.map(\.name).filter { $0.hasPrefix("grad.") }, ["grad.aux", "grad.p"])
        // A buffer or an unknown name is not a trainable parameter: the error names it.
        for name in ["buf", "nonexistent.weight"] {
            XCTAssertThrowsError(try Autodiff.differentiate(forward, loss: "loss", parameters: [name])) { error in
                XCTAssertTrue("\(error)".contains(name), "\(error)")
            }
        }
    }

    // MARK: errors

    func testLossMustBeAnExistingScalarOutput() throws {
        let b = GraphBuilder(name: "errors")
        let p = b.parameter("p", [2, 3], initializer: .zeros)
        b.output("vector_out", p.exp())
        b.output("loss", p.sumAll())
        b.output("int_scalar", b.input("n", TensorType(.i64, [])))
        let graph = try b.build()
        XCTAssertNoThrow(try Autodiff.differentiate(graph, loss: "loss"))
        XCTAssertThrowsError(try Autodiff.differentiate(graph, loss: "no_such_loss")) { error in
            XCTAssertTrue("\(error)".contains("no_such_loss"), "\(error)")
        }
        XCTAssertThrowsError(try Autodiff.differentiate(graph, loss: "vector_out")) { error in
            XCTAssertTrue("\(error)".contains("vector_out"), "\(error)")
            XCTAssertTrue("\(error)".contains("scalar"), "\(error)")
        }
        XCTAssertThrowsError(try Autodiff.differentiate(graph, loss: "int_scalar")) { error in
            XCTAssertTrue("\(error)".contains("int_scalar"), "\(error)")
        }
    }

    // MARK: the zoo model

    /// SiT with an IG head after block 1: hidden 32, depth 2, 16 tokens, batch 2.
    static let tinySettings = LossSettings(objective: .flowRepa)

    static func tinyLossGraph() throws -> Graph {
        let model = try DiffusionTransformer(ModelConfig(backbone: .sit, inputSize: 8, inChannels: 4, learnSigma: false,
                                                         patch: 2, hidden: 32, depth: 2, heads: 2, numClasses: 10,
                                                         igLayer: 1))
        return try objectiveGraph(model, batch: 2, settings: tinySettings)
    }

    func testBackwardNodesKeepOriginAndScopeOnTheZooModel() throws {
        // The attention-kernels stage folds attention into token_attention; the rest of the forward is untouched.
        let forward = try AttentionKernelPass().run(try Self.tinyLossGraph())
        XCTAssertEqual(forward.nodes.filter { $0.op.mnemonic == "token_attention" }.count, 2, "one per block")
        let graph = try Autodiff.differentiate(forward, loss: "loss")
        let forwardCount = forward.nodes.count

        XCTAssertEqual(Array(graph.nodes[..<forwardCount]), forward.nodes, "the forward part is left as it was")
        XCTAssertGreaterThan(graph.nodes.count, forwardCount)
        var withoutOrigin: [Int] = []
        var scopeMismatches: [String] = []
        for node in graph.nodes[forwardCount...] {
            guard let origin = node.origin else {
                withoutOrigin.append(node.id)
                continue
            }
            XCTAssertLessThan(origin, forwardCount, "node %\(node.id) has a backward node as origin")
            guard origin < forwardCount else { continue }
            if node.scope != forward.nodes[origin].scope {
                scopeMismatches.append("%\(node.id) (\(node.op.mnemonic)) scope \"\(node.scope)\", origin %\(origin) \"\(forward.nodes[origin].scope)\"")
            }
        }
        XCTAssertEqual(withoutOrigin, [], "backward nodes without an origin")
        XCTAssertEqual(scopeMismatches, [], "backward nodes outside their origin's scope")
        let backwardScopes = Set(graph.nodes[forwardCount...].map(\.scope))
        for scope in ["blocks.0", "blocks.1", "final_layer", "final_layer_xr"] {
            XCTAssertTrue(backwardScopes.contains { $0.hasPrefix(scope) }, "no backward node in \(scope)")
        }

        // One gradient of the parameter's shape per trainable parameter, the forward outputs kept.
        let trainable = forward.parameterNodes.filter { $0.role == .parameter }
        XCTAssertFalse(trainable.isEmpty)
        for node in trainable {
            let name = node.op.parameterName!
            guard let gradient = graph.output(named: Naming.gradientPrefix + name) else {
                XCTFail("no gradient for \(name)")
                continue
            }
            XCTAssertEqual(gradient.type, node.type, name)
        }
        XCTAssertEqual(graph.outputs.count, forward.outputs.count + trainable.count)
        XCTAssertEqual(Array(graph.outputs.prefix(forward.outputs.count)), forward.outputs)
        let buffers = forward.parameterNodes.filter { $0.role == .buffer }.compactMap(\.op.parameterName)
        for name in buffers {
            XCTAssertNil(graph.output(named: Naming.gradientPrefix + name), "buffer \(name) got a gradient")
        }
    }

    /// Central differences of the whole SiT+IG loss against the analytic gradient, on 20 random
    /// parameter elements (a random parameter tensor, then a random element of it, so small
    /// tensors such as biases are sampled as often as large ones).
    ///
    /// Zero-initialised parameters (adaLN modulation, final layers) are first set to N(0, 0.1²)
    /// values, otherwise most blocks would be the identity and many gradients exactly zero.
    ///
    /// Tolerance (float32 executor): the graph's own scalar loss is quantised to ulp(L) ≈ 2.4e-7,
    /// which would limit central differences to ≈ 1e-5, the size of many gradients here. So the
    /// perturbed losses are re-summed in Double from the float32 head outputs (checked against the
    /// graph's loss); what remains is the outputs' own roundoff, δL ≈ 2κu·|L|/√N (N outputs, a few
    /// ulps each, κ ≈ 4), giving FD noise ≤ δL/h. The step h = 1e-2·max(1, |p|) keeps truncation
    /// (h²/6·|f'''|) below 1e-4 relative in this smooth model (gelu_tanh, silu, softmax,
    /// layer_norm; no kinks), so |fd − analytic| must stay within 2·δL/h + 1e-7 + 1e-2·|analytic|.
    /// (Observed: errors ≤ 2e-6 absolute, ≤ 1e-4 relative where the gradient is not tiny.)
    func testWholeModelFiniteDifferences() throws {
        let forward = try Self.tinyLossGraph()
        let graph = try Autodiff.differentiate(forward, loss: "loss")
        var random = HarnessRandom(seed: 2024, name: "whole-model")
        var params = ParameterInitializer.initialize(forward, seed: 7)
        for node in forward.parameterNodes {
            guard case .parameter(let name, .zeros, true) = node.op else { continue }
            params[name] = HostTensor(shape: node.type.shape, floats: random.normal(node.type.elementCount, std: 0.1))
        }
        let n = 2, image = [n, 4, 8, 8], count = image.reduce(1, *)
        var inputs: [String: HostTensor] = [
            "x0": HostTensor(shape: image, floats: random.normal(count)),
            "eps": HostTensor(shape: image, floats: random.normal(count)),
            "t": HostTensor(shape: [n], floats: [0.3, 0.8]),
            "y": HostTensor(shape: [n], ints: [3, 7]),
        ]
        for (name, value) in Self.tinySettings.runtimeInputs { inputs[name] = .scalar(value) }
        let outputs = try executor.run(graph, inputs: inputs, parameters: params)
        // The loss of a perturbed run, re-summed in Double on the host from the float32 head outputs
        // (loss = MSE(final) + λ·MSE(inter) against the flow target ε − x₀): a float32 sum
        // of 512 terms would quantise L to ulp(L) ≈ 2.4e-7, i.e. the FD estimate to ≈ 1e-5.
        func loss(_ p: [String: HostTensor]) throws -> Double {
            let out = try executor.run(forward, inputs: inputs, parameters: p)
            func mse(_ head: String) -> Double {
                zip(out[head]!.floats, out["target"]!.floats).reduce(0.0) { $0 + pow(Double($1.0) - Double($1.1), 2) }
                    / Double(count)
            }
            return mse("out_final") + Double(Self.tinySettings.igLambda) * mse("out_inter")
        }
        let baseLoss = try loss(params)
        XCTAssertEqual(Double(outputs["loss"]!.floats[0]), baseLoss, accuracy: 1e-5 * baseLoss,
                       "the host re-summation is the graph's loss")

        let trainable = forward.parameterNodes.filter { $0.role == .parameter }.compactMap(\.op.parameterName).sorted()
        // Roundoff left in the host-summed loss: each of the N = 1 024 float32 outputs (two heads) is off by a few
        // ulps (relative κu, κ ≈ 4, u = 2⁻²⁴), independently enough to average: δL ≈ 2κu·|L|/√N.
        let outputCount = Double(2 * count)
        let noise = 2 * 4 * Double(Float.ulpOfOne / 2) * abs(baseLoss) / outputCount.squareRoot()

        var lines: [String] = []
        var worst = 0.0
        var substantial = 0
        for _ in 0..<20 {
            let name = trainable[random.int(0..<trainable.count)]
            let index = random.int(0..<params[name]!.elementCount)
            let p = params[name]!.floats[index]
            let h: Float = 1e-2 * max(1, abs(p))
            var plus = params, minus = params
            plus[name]!.floats[index] = p + h
            minus[name]!.floats[index] = p - h
            let hTaken = (Double(p + h) - Double(p - h)) / 2
            let fd = (try loss(plus) - loss(minus)) / (2 * hTaken)
            let analytic = Double(outputs["grad." + name]!.floats[index])
            if abs(analytic) > 1e-4 { substantial += 1 }
            let tolerance = 2 * noise / hTaken + 1e-7 + 1e-2 * abs(analytic)
            worst = max(worst, abs(fd - analytic) / tolerance)
            let line = String(format: "%@[%d]: analytic %.6g fd %.6g (tolerance %.2g)", name, index, analytic, fd, tolerance)
            lines.append(line)
            XCTAssertLessThanOrEqual(abs(fd - analytic), tolerance, line)
        }
        XCTAssertGreaterThanOrEqual(substantial, 10, "most checked gradients should be clearly non-zero")
        print(String(format: "whole-model FD: loss %.5f, loss noise %.2g, worst error/tolerance %.3f", baseLoss, noise, worst))
        print(lines.joined(separator: "\n"))
    }
}
