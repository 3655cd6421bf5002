import Foundation
import LoomCompiler
import LoomData
import LoomDiffusion
import LoomGraphs
import LoomIR
import LoomRuntime
import LoomTraining

/// Time grids of the samplers, all computed in double. Flow grids are kept as noise levels σ
/// (σ = 1 noise, σ = 0 data; Docs/conventions.md §1) and mapped to the model's time by the convention:
/// REPA/IG-SiT `t = σ`, SiT/LightningDiT `t = 1 − σ`.
public enum TimeGrid {
    /// LightningDiT's timestep shift on data-time τ (SiT's t): `τ' = s·τ / (1 + (s − 1)·τ)`.
    /// s < 1 moves grid points towards noise (τ = 0). s = 1 is the identity.
    public static func shift(_ tau: Double, _ s: Double) -> Double {
        s == 1 ? tau : s * tau / (1 + (s - 1) * tau)
    }

    /// `count` evenly spaced values from `start` to `end` inclusive (`torch.linspace`).
    public static func linspace(_ start: Double, _ end: Double, _ count: Int) -> [Double] {
        guard count > 1 else { return [start] }
        return (0..<count).map { i in
            i == count - 1 ? end : start + (end - start) * Double(i) / Double(count - 1)
        }
    }

    /// The ODE grid: `steps + 1` noise levels from 1 to 0, evenly spaced in data-time τ = 1 − σ
    /// (SiT's `linspace(0, 1, steps + 1)`) and then shifted.
    public static func flowODE(steps: Int, shift s: Double = 1) -> [Double] {
        linspace(0, 1, steps + 1).map { 1 - shift($0, s) }
    }

    /// The Euler–Maruyama grid: `steps` noise levels `linspace(1, lastSigma, steps)` (IG-SiT), shifted
    /// like the ODE grid, followed by 0 (the final deterministic step).
    public static func flowSDE(steps: Int, lastSigma: Double = 0.04, shift s: Double = 1) -> [Double] {
        linspace(1, lastSigma, steps).map { 1 - shift(1 - $0, s) } + [0]
    }

    /// The time fed to a flow network at noise level σ.
    public static func modelTime(sigma: Double, objective: Objective) -> Double {
        objective == .flowSit ? 1 - sigma : sigma
    }

    /// DiT's `space_timesteps(trainSteps, "N")`: `round(i·(T−1)/(N−1))` for i < N (Python's
    /// round-half-to-even), ascending. N = 1 gives [0] as DiT does.
    public static func respacedSteps(trainSteps: Int, count: Int) -> [Int] {
        guard count > 1 else { return [0] }
        let stride = Double(trainSteps - 1) / Double(count - 1)
        var taken = Set<Int>()
        var current = 0.0
        for _ in 0..<count {
            taken.insert(Int((current).rounded(.toNearestOrEven)))
            current += stride
        }
        return taken.sorted()
    }
}

/// A DDPM schedule respaced to a subset of the training steps (DiT's `SpacedDiffusion`): the
/// β of kept step i is `1 − ᾱ_{t_i} / ᾱ_{t_{i−1}}`, and the network is fed the original step t_i.
public struct RespacedSchedule: Sendable {
    /// Original (training-scale) step of each respaced index, ascending.
    public let timesteps: [Int]
    public let betas: [Double]
    public let alphasCumprod: [Double]
    /// ᾱ of the previous respaced index (1 before the first).
    public let alphasCumprodPrev: [Double]
    /// Posterior variance β̃_i = β_i (1 − ᾱ_{i−1}) / (1 − ᾱ_i) (0 at i = 0).
    public let posteriorVariance: [Double]
    /// log β̃_i with the i = 0 entry replaced by i = 1's (DiT's `posterior_log_variance_clipped`).
    public let posteriorLogVarianceClipped: [Double]
    /// The training scale, for σ = t / trainSteps.
    public let trainSteps: Int

    public init(base: DDPMSchedule, steps: Int) {
        let kept = TimeGrid.respacedSteps(trainSteps: base.steps, count: steps)
        var betas: [Double] = [], cumprod: [Double] = []
        var last = 1.0
        for t in kept {
            let a = base.alphasCumprod[t]
            betas.append(1 - a / last)
            last = a
        }
        var product = 1.0
        for beta in betas {
            product *= 1 - beta
            cumprod.append(product)
        }
        let previous = [1.0] + cumprod.dropLast()
        let variance = betas.indices.map { i in betas[i] * (1 - previous[i]) / (1 - cumprod[i]) }
        timesteps = kept
        self.betas = betas
        alphasCumprod = cumprod
        alphasCumprodPrev = previous
        posteriorVariance = variance
        posteriorLogVarianceClipped = variance.indices.map { i in
            Foundation.log(variance.count > 1 ? variance[i == 0 ? 1 : i] : betas[0])
        }
        trainSteps = base.steps
    }

    public var count: Int { timesteps.count }

    /// Noise level of respaced index i: `t_i / trainSteps`.
    public func sigma(_ i: Int) -> Double { Double(timesteps[i]) / Double(trainSteps) }
}
