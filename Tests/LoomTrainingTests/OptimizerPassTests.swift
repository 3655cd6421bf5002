import LoomCompiler
import LoomData
import LoomDiffusion
import LoomIR
import LoomRuntime
import LoomTestSupport
import LoomTraining
import XCTest

/// The optimizer nodes against a plain Swift AdamW + clip + EMA written from PyTorch's definitions.
final class OptimizerPassTests: XCTestCase {
    func makeGraph(settings: AdamWSettings) throws -> Graph {
        let b = GraphBuilder(name: "regression")
        let x = b.input("x", TensorType(.f32, [6, 3]))
        let w = b.parameter("w", [3, 4], initializer: .normal(std: 0.5))
        let bias = b.parameter("b", [4], initializer: .normal(std: 0.5))
        let loss = ((x.matmul(w) + bias).square() * 3).meanAll()
        b.output("loss", loss)
        let grads = try Pipeline.differentiate(try b.build())
        return try OptimizerPass.append(grads, settings: settings, keepGradients: true)
    }

    func testTwoStepsMatchReferenceAdamW() throws {
        var settings = AdamWSettings()
        settings.clipNorm = 0.05          // small enough to be active
        settings.weightDecay = 0.1
        settings.emaDecay = 0.9
        let graph = try makeGraph(settings: settings)
        var state = ParameterInitializer.initialize(graph, seed: 3)
        for key in ["w", "b"] { state["ema." + key] = state[key] }
        var stream = RandomStream(seed: 9, stream: 1)
        let x = HostTensor(shape: [6, 3], floats: stream.normal(18))
        var reference = state.mapValues { $0.floats.map(Double.init) }
        let lr: Float = 0.01
        for step in 1...2 {
            var inputs: [String: HostTensor] = ["x": x]
            for (k, v) in settings.stepInputs(step: step, lr: lr) { inputs[k] = .scalar(v) }
            let out = try ReferenceExecutor(threads: 1).run(graph, inputs: inputs, parameters: state)
            // Reference update from the graph's own gradients.
            let grads = ["w": out["grad.w"]!.floats.map(Double.init), "b": out["grad.b"]!.floats.map(Double.init)]
            let norm = grads.values.flatMap { $0 }.reduce(0) { $0 + $1 * $1 }.squareRoot()
            XCTAssertEqual(Double(out["grad_norm"]!.floats[0]), norm, accuracy: 1e-5 * max(1, norm))
            let coef = min(1, Double(settings.clipNorm!) / (norm + 1e-6))
            let (b1, b2) = (Double(settings.beta1), Double(settings.beta2))
            for key in ["w", "b"] {
                var p = reference[key]!, m = reference["optim.m." + key]!, v = reference["optim.v." + key]!
                var ema = reference["ema." + key]!
                for i in p.indices {
                    let g = grads[key]![i] * coef
                    m[i] = b1 * m[i] + (1 - b1) * g
                    v[i] = b2 * v[i] + (1 - b2) * g * g
                    p[i] *= 1 - Double(lr) * Double(settings.weightDecay)
                    let denom = (v[i].squareRoot() / (1 - pow(b2, Double(step))).squareRoot()) + Double(settings.eps)
                    p[i] -= Double(lr) / (1 - pow(b1, Double(step))) * m[i] / denom
                    let d = Double(settings.emaDecay(atStep: step)!)
                    ema[i] = d * ema[i] + (1 - d) * p[i]
                }
                reference[key] = p
                reference["optim.m." + key] = m
                reference["optim.v." + key] = v
                reference["ema." + key] = ema
            }
            for (name, value) in out where name.hasPrefix(Naming.updatePrefix) {
                let key = String(name.dropFirst(Naming.updatePrefix.count))
                state[key] = value
                let expected = reference[key]!
                let scale = expected.map(abs).max()!
                let error = zip(value.floats, expected).map { abs(Double($0) - $1) }.max()! / scale
                XCTAssertLessThan(error, 1e-5, "step \(step) \(key)")
                reference[key] = value.floats.map(Double.init)  // keep both on the same trajectory
            }
        }
    }

    func testRequiresGradients() throws {
        let b = GraphBuilder(name: "plain")
        b.output("y", b.parameter("w", [2], initializer: .ones).sumAll())
        XCTAssertThrowsError(try OptimizerPass.append(try b.build(), settings: AdamWSettings())) { error in
            XCTAssertTrue("\(error)".contains("no grad.* outputs"), "\(error)")
        }
    }
}
