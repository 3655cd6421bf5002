import Foundation
import LoomData
import LoomDiffusion
import LoomIR
import LoomRuntime
import LoomSampling
import LoomTestSupport
import LoomTraining

/// Data x₀ ~ N(μ_p, s_p²) independently per pixel p. The exact denoiser of every convention is then
/// linear in x with closed-form time-dependent coefficients; `network` traces it as a graph (t from
/// the input, μ, s² and the DDPM ᾱ table as buffers under `analytic.`).
struct AnalyticGaussian {
    let shape: [Int]   // [C, H, W]
    let mu: [Double]
    let s: [Double]

    var pixels: Int { shape.reduce(1, *) }

    /// The buffers the traced field reads.
    func parameters(schedule: DDPMSchedule = DDPMSchedule()) -> [String: HostTensor] {
        [
            "analytic.mu": HostTensor(shape: [1] + shape, floats: mu.map { Float($0) }),
            "analytic.s2": HostTensor(shape: [1] + shape, floats: s.map { Float($0 * $0) }),
            "analytic.alphas_cumprod": HostTensor(shape: [schedule.steps, 1],
                                                  floats: schedule.alphasCumprod.map { Float($0) }),
        ]
    }

    /// The exact field for `objective`: REPA velocity `E[ε − x₀ | x_t]`, SiT velocity `E[x₀ − ε | x_t]`,
    /// or DDPM `E[ε | x_t]`. With `varianceChannels` the output gets C more channels filled with that
    /// constant (a learn_sigma model's v).
    func network(_ objective: Objective, varianceChannels: Float? = nil) -> StepNetwork {
        let shape = self.shape
        return { b, x, t, _ in
            b.scoped("analytic") {
                let n = x.shape[0]
                let mu = b.parameter("mu", [1] + shape, initializer: .zeros, trainable: false)
                let s2 = b.parameter("s2", [1] + shape, initializer: .zeros, trainable: false)
                let table = b.parameter("alphas_cumprod", [1000, 1], initializer: .zeros, trainable: false)
                let tt = t.reshape([n, 1, 1, 1])
                var out: Tensor
                switch objective {
                case .flowRepa:
                    let keep = 1 - tt                                     // 1 − t
                    let variance = keep * keep * s2 + tt * tt
                    let slope = (tt - keep * s2) / variance
                    out = slope * (x - keep * mu) - mu
                case .flowSit:
                    let noise = 1 - tt
                    let variance = tt * tt * s2 + noise * noise
                    let slope = (tt * s2 - noise) / variance
                    out = mu + slope * (x - tt * mu)
                case .ddpmEps:
                    let alphaBar = table.gather(t.cast(.i64)).reshape([n, 1, 1, 1])
                    let variance = alphaBar * s2 + (1 - alphaBar)
                    out = (1 - alphaBar).sqrt() / variance * (x - alphaBar.sqrt() * mu)
                }
                if let v = varianceChannels {
                    out = concat([out, b.constant(v, shape: out.shape)], axis: 1)
                }
                return (out, nil)
            }
        }
    }

    /// The exact probability-flow map from pure noise (σ = 1; DDPM: step `fromStep`) to the data end.
    func exactFlowMap(_ noise: [Float], ddpmFrom fromStep: Int? = nil) -> [Double] {
        let alphaBar = fromStep.map { DDPMSchedule().alphasCumprod[$0] }
        return noise.enumerated().map { index, value in
            let p = index % pixels
            guard let a = alphaBar else { return mu[p] + s[p] * Double(value) }
            let sd = (a * s[p] * s[p] + 1 - a).squareRoot()
            return mu[p] + s[p] * (Double(value) - a.squareRoot() * mu[p]) / sd
        }
    }
}

/// Mean and variance of a linear-Gaussian chain `x ← A·x + B + C·z` per pixel, starting at N(0, 1).
struct ChainMoments {
    var mean = 0.0
    var variance = 1.0

    /// One step with the map `x ↦ map(x)` (affine; A and B read off map(0), map(1)) and noise std c.
    mutating func step(noiseStd c: Double, _ map: (Double) -> Double) {
        let b = map(0), a = map(1) - b
        mean = a * mean + b
        variance = a * a * variance + c * c
    }
}
