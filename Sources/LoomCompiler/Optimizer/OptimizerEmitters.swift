import LoomIR

/// The state buffers of one parameter: first and second moments, and the EMA copy.
private func stateBuffers(_ b: GraphBuilder, _ key: String, _ shape: [Int], ema: Bool) -> (m: Tensor, v: Tensor, ema: Tensor?) {
    // Buffers are keyed at the top level, whatever scope the optimizer is written in.
    b.withScope("") {
        (b.parameter(Naming.firstMomentPrefix + key, shape, initializer: .zeros, trainable: false),
         b.parameter(Naming.secondMomentPrefix + key, shape, initializer: .zeros, trainable: false),
         ema ? b.parameter(Naming.emaPrefix + key, shape, initializer: .zeros, trainable: false) : nil)
    }
}

/// Writes the optimizer's update in one of its two forms; each returns (update name, new value)
/// pairs: `grad_norm`, then per parameter m, v, the parameter and the EMA.
struct OptimizerEmitter {
    let b: GraphBuilder
    let settings: AdamWSettings
    let scalars: OptimizerScalars

    init(_ b: GraphBuilder, _ settings: AdamWSettings, _ scalars: OptimizerScalars) {
        (self.b, self.settings, self.scalars) = (b, settings, scalars)
    }

    /// The reference form, formula by formula in primitive ops:
    /// m' = β₁m + (1 − β₁)g, v' = β₂v + (1 − β₂)g², p' = p·(1 − lr·wd) − (lr / (1 − β₁ᵗ))·m' /
    /// (√v' / √(1 − β₂ᵗ) + ε), ema' = d·ema + (1 − d)·p', with g the clipped gradient.
    func primitive(_ targets: [OptimizerTarget]) -> [(String, Tensor)] {
        let grads = targets.map { b.tensor($0.gradient) }
        let squares = grads.map { $0.square().sumAll() }
        let norm = squares.dropFirst().reduce(squares[0], +).sqrt()
        var updates: [(String, Tensor)] = [(Naming.gradientNormOutput, norm)]
        let coef = scalars.clipFactor(norm: norm)
        let stepSize = scalars.stepSize
        let sqrtBias2 = scalars.bias2.sqrt()
        let decay = scalars.decayFactor
        for (target, rawGrad) in zip(targets, grads) {
            let param = b.tensor(target.parameter)
            let g = rawGrad * coef
            let state = stateBuffers(b, target.key, param.shape, ema: scalars.emaDecay != nil)
            let m1 = state.m * settings.beta1 + g * (1 - settings.beta1)
            let v1 = state.v * settings.beta2 + g.square() * (1 - settings.beta2)
            let denominator = v1.sqrt() / sqrtBias2 + settings.eps
            let p1 = param * decay - stepSize * m1 / denominator
            updates.append((Naming.firstMomentPrefix + target.key, m1))
            updates.append((Naming.secondMomentPrefix + target.key, v1))
            updates.append((target.key, p1))
            if let ema = state.ema, let d = scalars.emaDecay {
                updates.append((Naming.emaPrefix + target.key, ema * d + p1 * (1 - d)))
            }
        }
        return updates
    }

    /// The form it runs as: `sum_squares` for the norm and one `adamw` launch (operands and layout
    /// in `AdamWUpdate`) whose result `[p | m | v | ema]` is sliced into the `update.*` values;
    /// `targets` in state-layout order (`OptimizerPass.layoutOrder`).
    func fused(_ targets: [OptimizerTarget]) -> [(String, Tensor)] {
        let grads = targets.map { b.tensor($0.gradient) }
        let norm = b.append(.fused(.sumSquares), grads).sqrt()
        var updates: [(String, Tensor)] = [(Naming.gradientNormOutput, norm)]
        let ema = scalars.emaDecay != nil
        let params = targets.map { b.tensor($0.parameter) }
        let states = zip(targets, params).map { stateBuffers(b, $0.key, $1.shape, ema: ema) }
        let kernel = AdamWUpdate(segments: targets.count, beta1: settings.beta1, beta2: settings.beta2,
                                 eps: settings.eps, clip: true, decay: true, ema: ema)
        var operands = grads + params + states.map(\.m) + states.map(\.v)
        if ema { operands += states.map { $0.ema! } }
        operands += [scalars.stepSize, scalars.bias2.sqrt(), scalars.clipFactor(norm: norm), scalars.decayFactor]
        if let d = scalars.emaDecay { operands += [d, 1 - d] }
        let state = b.append(.fused(.adamw(kernel)), operands)      // [parts · P], P = Σ |pᵢ|
        let total = params.reduce(0) { $0 + $1.type.elementCount }
        var offset = 0
        for (target, param) in zip(targets, params) {
            let count = param.type.elementCount
            func part(_ index: Int) -> Tensor {
                let start = index * total + offset
                let flat = state.slice(axis: 0, start..<(start + count))
                return param.shape == [count] ? flat : flat.reshape(param.shape)
            }
            updates.append((Naming.firstMomentPrefix + target.key, part(1)))
            updates.append((Naming.secondMomentPrefix + target.key, part(2)))
            updates.append((target.key, part(0)))
            if ema { updates.append((Naming.emaPrefix + target.key, part(3))) }
            offset += count
        }
        return updates
    }
}
