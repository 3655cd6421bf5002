import LoomIR

/// AdamW hyper-parameters fixed at compile time. The learning rate, the bias corrections and the
/// EMA decay are runtime inputs (`optim.lr`, `optim.bias1` = 1 − β₁ᵗ, `optim.bias2` = 1 − β₂ᵗ,
/// `optim.ema_decay`), so one plan serves every step and any schedule.
public struct AdamWSettings: Equatable, Sendable, Codable {
    public var beta1: Float = 0.9
    public var beta2: Float = 0.999
    public var eps: Float = 1e-8
    public var weightDecay: Float = 0
    /// Global gradient-norm clip (PyTorch's `clip_grad_norm_`), nil for none.
    public var clipNorm: Float? = 1.0
    /// Decay of the EMA copy of the weights, nil for none.
    public var emaDecay: Float? = 0.9999
    /// Warm the EMA up: decay `min(d, (1 + t)/(10 + t))` at step t, so short runs get a useful
    /// average instead of one stuck near the initial (zero-headed) weights.
    public var emaWarmup = true

    public init() {}

    /// EMA decay used at 1-based step `t`.
    public func emaDecay(atStep t: Int) -> Float? {
        guard let d = emaDecay else { return nil }
        return emaWarmup ? min(d, Float(1 + t) / Float(10 + t)) : d
    }

    /// Runtime scalars for step `t` (1-based) at learning rate `lr`.
    public func stepInputs(step t: Int, lr: Float) -> [String: Float] {
        var inputs = ["optim.lr": lr,
                      "optim.bias1": Float(1 - Double(beta1).power(t)),
                      "optim.bias2": Float(1 - Double(beta2).power(t))]
        if let d = emaDecay(atStep: t) { inputs["optim.ema_decay"] = d }
        return inputs
    }
}

private extension Double {
    func power(_ n: Int) -> Double {
        var result = 1.0
        for _ in 0..<n { result *= self }
        return result
    }
}

/// Appends the optimizer to a differentiated graph: global grad-norm clipping, AdamW (bias
/// corrected, decoupled weight decay) and the EMA update, as graph nodes in scope `optimizer`.
/// State lives in buffers `optim.m.<key>`, `optim.v.<key>`, `ema.<key>`; every new value is an
/// output `update.<buffer or parameter key>` that the runtime writes back after the step.
public enum OptimizerPass {
    public static let updatePrefix = "update."

    public static func append(_ graph: Graph, settings: AdamWSettings, keepGradients: Bool = false) throws -> Graph {
        let b = GraphBuilder(extending: graph)
        let gradients = graph.outputs.filter { $0.name.hasPrefix(Autodiff.gradientPrefix) }
        guard !gradients.isEmpty else {
            throw IRError("optimizer: graph \(graph.name) has no grad.* outputs; run autodiff first")
        }
        var updates: [(String, Tensor)] = []
        b.scoped("optimizer") {
            let lr = b.input("optim.lr", TensorType(.f32, []))
            let bias1 = b.input("optim.bias1", TensorType(.f32, []))
            let bias2 = b.input("optim.bias2", TensorType(.f32, []))
            let grads = gradients.map { b.tensor($0.node) }
            let squares = grads.map { $0.square().sumAll() }
            let total = squares.dropFirst().reduce(squares[0], +).sqrt()
            updates.append(("grad_norm", total))
            var coef: Tensor?
            if let clip = settings.clipNorm {
                coef = ((total + 1e-6).unary(.recip) * clip).minimum(b.constant(1))
            }
            let stepSize = lr / bias1                                    // lr / (1 − β₁ᵗ)
            let sqrtBias2 = bias2.sqrt()
            let decay = 1 - lr * settings.weightDecay                    // [] scalar
            let emaDecay = settings.emaDecay.map { _ in b.input("optim.ema_decay", TensorType(.f32, [])) }
            for (output, rawGrad) in zip(gradients, grads) {
                let key = String(output.name.dropFirst(Autodiff.gradientPrefix.count))
                guard let paramNode = graph.parameterNodes.first(where: { $0.op.parameterName == key }) else {
                    continue
                }
                let shape = paramNode.type.shape
                let param = b.tensor(paramNode.id)
                let g = coef.map { rawGrad * $0 } ?? rawGrad
                let (m, v) = b.withScope("") {
                    (b.parameter("optim.m." + key, shape, initializer: .zeros, trainable: false),
                     b.parameter("optim.v." + key, shape, initializer: .zeros, trainable: false))
                }
                let m1 = m * settings.beta1 + g * (1 - settings.beta1)
                let v1 = v * settings.beta2 + g.square() * (1 - settings.beta2)
                let denominator = v1.sqrt() / sqrtBias2 + settings.eps
                let decayed = settings.weightDecay == 0 ? param : param * decay
                let p1 = decayed - stepSize * m1 / denominator
                updates.append(("optim.m." + key, m1))
                updates.append(("optim.v." + key, v1))
                updates.append((key, p1))
                if let d = emaDecay {
                    let ema = b.withScope("") { b.parameter("ema." + key, shape, initializer: .zeros, trainable: false) }
                    updates.append(("ema." + key, ema * d + p1 * (1 - d)))
                }
            }
        }
        var result = try b.build()
        if !keepGradients { result.outputs.removeAll { $0.name.hasPrefix(Autodiff.gradientPrefix) } }
        for (name, tensor) in updates {
            let outputName = name == "grad_norm" ? name : updatePrefix + name
            result.outputs.append(GraphOutput(name: outputName, node: tensor.id))
        }
        result.refreshRoles()
        try Verifier.verify(result)
        return result
    }
}
