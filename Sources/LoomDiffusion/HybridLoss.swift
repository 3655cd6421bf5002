import Foundation
import LoomData
import LoomIR

// The variational-bound half of the hybrid loss of learn_sigma DDPM models (ADM / DiT,
// Docs/conventions.md §2): the model's ε̂ channels are held fixed (stop-gradient) and only the variance
// channels v are trained by the bound term, `L = MSE(ε̂, ε) + L_vb`, L_vb not rescaled.

extension DDPMSchedule {
    /// Number of columns of a `ddpm_vb_coef` row (see `variationalBoundCoefficients`).
    public static let vbColumns = 7

    /// Per-sample constants of the variational-bound term for integer steps t, flattened
    /// [N, `vbColumns`] — the `ddpm_vb_coef` input of hybrid-loss graphs. Every column is computed
    /// in double and rounded once. With ᾱ_{−1} = 1 and β̃_t = β_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t):
    ///
    /// 0. `√(1/ᾱ_t)` — x̂₀ = col0 · x_t − col1 · ε̂
    /// 1. `√(1/ᾱ_t − 1)`
    /// 2. posterior mean coefficient of x₀: `β_t √ᾱ_{t−1} / (1 − ᾱ_t)`
    /// 3. posterior mean coefficient of x_t: `(1 − ᾱ_{t−1}) √α_t / (1 − ᾱ_t)`
    /// 4. clipped posterior log-variance `log β̃_t`, with the t = 0 entry (β̃₀ = 0) replaced by
    ///    t = 1's — the lower end of the learned range
    /// 5. log-variance range `log β_t − col4` (≥ 0): the model log-variance is
    ///    `col4 + f · col5 = f log β_t + (1 − f) col4`, f = (v + 1)/2; kept as a difference so the
    ///    KL's variance term does not cancel catastrophically in single precision
    /// 6. `1` when t = 0 (the term is the discretized decoder NLL), else `0` (the KL term)
    ///
    /// Throws when a step is not an integer in 0..<steps.
    public func variationalBoundCoefficients(_ t: [Float]) throws -> [Float] {
        guard steps >= 2 else {
            throw DiffusionError("the variational-bound term needs at least 2 DDPM steps, the schedule has \(steps)")
        }
        func posteriorVariance(_ step: Int) -> Double {
            let previous = step == 0 ? 1.0 : alphasCumprod[step - 1]
            return betas[step] * (1 - previous) / (1 - alphasCumprod[step])
        }
        var out: [Float] = []
        out.reserveCapacity(t.count * Self.vbColumns)
        for (i, value) in t.enumerated() {
            let step = Int(exactly: value) ?? -1
            guard step >= 0, step < steps else {
                throw DiffusionError("t[\(i)] = \(value) is not an integer DDPM step in 0..<\(steps)")
            }
            let beta = betas[step], alphaBar = alphasCumprod[step]
            let alphaBarPrev = step == 0 ? 1.0 : alphasCumprod[step - 1]
            let logVarMin = Foundation.log(posteriorVariance(max(step, 1)))
            let row: [Double] = [
                (1 / alphaBar).squareRoot(),
                (1 / alphaBar - 1).squareRoot(),
                beta * alphaBarPrev.squareRoot() / (1 - alphaBar),
                (1 - alphaBarPrev) * (1 - beta).squareRoot() / (1 - alphaBar),
                logVarMin,
                Foundation.log(beta) - logVarMin,
                step == 0 ? 1 : 0,
            ]
            out.append(contentsOf: row.map { Float($0) })
        }
        return out
    }
}

/// The variational-bound term of the hybrid loss, in bits per dimension, averaged over the batch.
///
/// `output` [N, 2C, H, W]: the first C channels are ε̂ (stop-gradient'ed: the mean is held fixed),
/// the last C the variance values v. `x0`, `xt` [N, C, H, W]; `coef` [N, `DDPMSchedule.vbColumns`]
/// from `DDPMSchedule.variationalBoundCoefficients`. Per sample: for t > 0 the mean over C·H·W of
/// KL(q(x_{t−1} | x_t, x₀) ‖ p(x_{t−1} | x_t)) / ln 2; at t = 0 the mean of the discretized Gaussian
/// decoder NLL / ln 2. x̂₀ is not clipped. Returns a scalar.
func variationalBoundTerm(output: Tensor, x0: Tensor, xt: Tensor, coef: Tensor, inChannels: Int) -> Tensor {
    let b = output.builder
    return b.scoped("vb") { () -> Tensor in
        let n = output.shape[0], c = inChannels
        let column = { (index: Int) -> Tensor in coef.slice(axis: 1, index..<(index + 1)).reshape([n, 1, 1, 1]) }
        let sqrtRecipAlphaBar = column(0), sqrtRecipM1AlphaBar = column(1)
        let meanCoefX0 = column(2), meanCoefXt = column(3)
        let logVarMin = column(4), logVarRange = column(5)
        let isFirstStep = coef.slice(axis: 1, 6..<7).reshape([n])

        let epsHat = output.slice(axis: 1, 0..<c).stopGradient()
        let v = output.slice(axis: 1, c..<(2 * c))

        // p(x_{t−1} | x_t): mean from the (frozen) ε̂, log-variance interpolated in the range.
        let predX0 = sqrtRecipAlphaBar * xt - sqrtRecipM1AlphaBar * epsHat
        let trueMean = meanCoefX0 * x0 + meanCoefXt * xt
        // trueMean − modelMean = coef1 · (x₀ − x̂₀): the coef2 · x_t parts cancel exactly.
        let meanGap = meanCoefX0 * (x0 - predX0)
        let frac = (v + 1) * 0.5
        let logVarOffset = frac * logVarRange           // model log-variance − posterior log-variance
        let modelLogVar = logVarMin + logVarOffset

        // KL(q ‖ p) = ½(−1 + lv₂ − lv₁ + e^{lv₁−lv₂} + (μ₁ − μ₂)² e^{−lv₂}), with
        // e^{−d} − 1 + d written through expm1(−d) = −2 tanh(d/2) / (1 + tanh(d/2)) so that small
        // offsets keep their precision.
        let kl = b.scoped("kl") { () -> Tensor in
            let halfTanh = (logVarOffset * 0.5).tanh()
            let expm1Neg = -2 * halfTanh / (1 + halfTanh)
            let varianceTerm = expm1Neg + logVarOffset
            let meanTerm = meanGap.square() * (-modelLogVar).exp()
            return ((varianceTerm + meanTerm) * 0.5).mean(axes: [1, 2, 3])   // [N], nats
        }

        // −log p(x₀ | x₁) with 8-bit bins of half-width 1/255 and open-ended outer bins.
        let nll = b.scoped("decoder_nll") { () -> Tensor in
            // x₀ − modelMean = (x₀ − trueMean) + meanGap; exact at t = 0 where trueMean = x₀.
            let centered = (x0 - trueMean) + meanGap
            let invStd = (modelLogVar * -0.5).exp()
            let cdfPlus = approxStandardNormalCDF(invStd * (centered + 1 / 255))
            let cdfMin = approxStandardNormalCDF(invStd * (centered - 1 / 255))
            let tiny = b.constant(1e-12)
            let logCdfPlus = cdfPlus.maximum(tiny).log()
            let logOneMinusCdfMin = (1 - cdfMin).maximum(tiny).log()
            let logCdfDelta = (cdfPlus - cdfMin).maximum(tiny).log()
            // Branch masks from sign: below = [x₀ < −0.999], above = [x₀ > 0.999].
            let below = (-0.999 - x0).unary(.sign).unary(.relu)
            let above = (x0 - 0.999).unary(.sign).unary(.relu)
            let inside = 1 - below - above
            let logProbs = below * logCdfPlus + above * logOneMinusCdfMin + inside * logCdfDelta
            return -logProbs.mean(axes: [1, 2, 3])                               // [N], nats
        }

        let perSample = isFirstStep * nll + (1 - isFirstStep) * kl
        return perSample.mean(axes: [0]) * Float(1 / Foundation.log(2.0))
    }
}

/// `Φ(x) ≈ ½(1 + tanh(√(2/π)(x + 0.044715 x³)))`, the approximation of the ADM code.
private func approxStandardNormalCDF(_ x: Tensor) -> Tensor {
    let inner = x * (x.square() * 0.044715 + 1) * Float((2 / Double.pi).squareRoot())
    return (inner.tanh() + 1) * 0.5
}
