import Foundation
import LoomCompiler
import LoomData
import LoomDiffusion
import LoomGraphs
import LoomIR
import LoomRuntime
import LoomTraining

/// The runtime scalars of one step-graph run: the `coef` input, f32 [`StepCoefficients.count`].
///
/// Layout (index: meaning):
/// 0. `w` — IG / autoguidance weight (1 outside the IG interval; ignored without IG)
/// 1. `s` — CFG scale (ignored by the undoubled graph)
/// 2. `cx` — weight of the current state `x`
/// 3. `cd` — weight of the guided denoiser output `D[:, :C]`
/// 4. `cz` — weight of the noise `z`
/// 5. `ca` — weight of `anchor` (Heun: the state at the start of the interval)
/// 6. `c_var` — learned-variance DDPM: weight of `exp(½(f·log β + (1−f)·log β̃))·z`, f = (D[:, C:] + 1)/2
/// 7. `log β` — upper end of the learned log-variance range
/// 8. `log β̃` — lower end (clipped posterior log-variance)
///
/// `x_next = cx·x + cd·D[:, :C] + cz·z + ca·anchor (+ c_var·exp(…)·z)`. Entries 6–8 are read only
/// by graphs built with `learnedVariance: true`.
public struct StepCoefficients: Equatable, Sendable {
    public var weight: Double = 1
    public var cfgScale: Double = 1
    public var cx: Double = 0
    public var cd: Double = 0
    public var cz: Double = 0
    public var ca: Double = 0
    public var cVar: Double = 0
    public var logBeta: Double = 0
    public var logBetaTilde: Double = 0

    /// Length of the `coef` input.
    public static let count = 9

    /// Positions in `coef`.
    public enum Index: Int, CaseIterable {
        case weight, cfgScale, cx, cd, cz, ca, cVar, logBeta, logBetaTilde
    }

    public init(weight: Double = 1, cfgScale: Double = 1, cx: Double = 0, cd: Double = 0, cz: Double = 0,
                ca: Double = 0, cVar: Double = 0, logBeta: Double = 0, logBetaTilde: Double = 0) {
        self.weight = weight
        self.cfgScale = cfgScale
        self.cx = cx
        self.cd = cd
        self.cz = cz
        self.ca = ca
        self.cVar = cVar
        self.logBeta = logBeta
        self.logBetaTilde = logBetaTilde
    }

    /// The `coef` vector, in the layout above.
    public var values: [Float] {
        [weight, cfgScale, cx, cd, cz, ca, cVar, logBeta, logBetaTilde].map { Float($0) }
    }

    /// The step uses the noise input.
    public var usesNoise: Bool { cz != 0 || cVar != 0 }
}

/// One network evaluation of a sampling run, planned on the host before sampling starts.
public struct SamplerEvaluation: Equatable, Sendable {
    /// Where this evaluation sits in its sampler step.
    public enum Stage: String, Sendable {
        /// A one-evaluation step: `x ← x_next`.
        case single
        /// Heun's first evaluation: the loop keeps `x` as the anchor and runs the corrector on
        /// `x_next` (the Euler prediction `x̃ = anchor + dt·D₁`).
        case predictor
        /// Heun's second evaluation, at x̃ and the interval's end:
        /// `x ← anchor + dt/2·(D₁ + D₂) = ½·anchor + ½·x̃ + dt/2·D₂`.
        case corrector
    }

    /// Index of the integration interval / respaced step (0 first).
    public var step: Int
    public var stage: Stage
    /// Noise level σ of this evaluation.
    public var sigma: Double
    /// The σ the guidance intervals are tested against: `sigma`, except for a Heun corrector of a
    /// `flow_repa` run, which (as in REPA's and the IG code's `euler_sampler`) keeps the decision
    /// made at the start of its interval.
    public var guidanceSigma: Double
    /// Time fed to the network (flow: t per convention; DDPM: the original integer step).
    public var modelTime: Double
    /// Solver coefficients; `weight` and `cfgScale` are filled in by the loop from the guidance.
    public var coefficients: StepCoefficients

    public init(step: Int, stage: Stage, sigma: Double, guidanceSigma: Double? = nil, modelTime: Double,
                coefficients: StepCoefficients) {
        self.step = step
        self.stage = stage
        self.sigma = sigma
        self.guidanceSigma = guidanceSigma ?? sigma
        self.modelTime = modelTime
        self.coefficients = coefficients
    }
}

/// Turns sampler settings into the list of network evaluations with their coefficients.
///
/// Flow kinds are derived in σ (REPA time, `v = ε − x₀ = dx/dσ`); in the SiT convention the
/// network predicts `u = x₀ − ε = −v`, so the coefficient applied to D (cd) flips sign.
public enum SamplerPlan {
    public static func evaluations(_ settings: SamplerSettings) throws -> [SamplerEvaluation] {
        try settings.validate()
        switch settings.kind {
        case .euler, .heun: return ode(settings)
        case .eulerMaruyama: return sde(settings)
        case .ddpm, .ddim: return ddpm(settings)
        }
    }

    /// Euler: `x ← x + dt·v`. Heun: predictor `x̃ = x + dt·v(x, σ)`, corrector
    /// `x ← x + dt/2·(v(x, σ) + v(x̃, σ'))`; every interval gets the full Heun step (SiT's / torchdiffeq
    /// `heun2`), unless `heunLastStepEuler` makes the last one a plain Euler step.
    static func ode(_ settings: SamplerSettings) -> [SamplerEvaluation] {
        let sign: Double = settings.objective == .flowSit ? -1 : 1
        let grid = TimeGrid.flowODE(steps: settings.steps, shift: settings.shift)
        var plan: [SamplerEvaluation] = []
        for i in 0..<settings.steps {
            let (sigma, next) = (grid[i], grid[i + 1])
            let dt = next - sigma
            let time = TimeGrid.modelTime(sigma: sigma, objective: settings.objective)
            let euler = StepCoefficients(cx: 1, cd: sign * dt)
            let heun = settings.kind == .heun && !(settings.heunLastStepEuler && i == settings.steps - 1)
            plan.append(SamplerEvaluation(step: i, stage: heun ? .predictor : .single, sigma: sigma,
                                          modelTime: time, coefficients: euler))
            if heun {
                plan.append(SamplerEvaluation(
                    step: i, stage: .corrector, sigma: next,
                    guidanceSigma: settings.objective == .flowRepa ? sigma : next,
                    modelTime: TimeGrid.modelTime(sigma: next, objective: settings.objective),
                    coefficients: StepCoefficients(cx: 0.5, cd: sign * dt / 2, ca: 0.5)))
            }
        }
        return plan
    }

    /// IG-SiT Euler–Maruyama in σ: drift `d = v − ½g²·s = (2 − σ)v + x` (g² = 2σ,
    /// s = −((1−σ)v + x)/σ), so `x ← (1 + dt)·x + dt(2 − σ)·v + √(2σ|dt|)·z`; the last step (from the
    /// last grid point to σ = 0) drops the noise.
    static func sde(_ settings: SamplerSettings) -> [SamplerEvaluation] {
        let sign: Double = settings.objective == .flowSit ? -1 : 1
        let grid = TimeGrid.flowSDE(steps: settings.steps, lastSigma: settings.sdeLastSigma, shift: settings.shift)
        return (0..<(grid.count - 1)).map { i in
            let (sigma, dt) = (grid[i], grid[i + 1] - grid[i])
            let last = i == grid.count - 2
            let coefficients = StepCoefficients(cx: 1 + dt, cd: sign * dt * (2 - sigma),
                                                cz: last ? 0 : (2 * sigma * Swift.abs(dt)).squareRoot())
            return SamplerEvaluation(step: i, stage: .single, sigma: sigma,
                                     modelTime: TimeGrid.modelTime(sigma: sigma, objective: settings.objective),
                                     coefficients: coefficients)
        }
    }

    /// Respaced DDPM ancestral / DDIM steps from the last respaced index down to 0. With
    /// `x̂₀ = √(1/ᾱ)·x − √(1/ᾱ − 1)·ε̂` (not clipped):
    /// - ancestral: posterior mean `c₁·x̂₀ + c₂·x`, `c₁ = β√ᾱ'/(1−ᾱ)`, `c₂ = (1−ᾱ')√(1−β)/(1−ᾱ)`,
    ///   plus `σ_t·z` except at index 0;
    /// - DDIM: `√ᾱ'·x̂₀ + √(1 − ᾱ' − σ_η²)·ε̂ + σ_η·z`, `σ_η = η√((1−ᾱ')/(1−ᾱ))√(1 − ᾱ/ᾱ')`.
    static func ddpm(_ settings: SamplerSettings) -> [SamplerEvaluation] {
        let schedule = RespacedSchedule(base: DDPMSchedule(steps: settings.trainSteps), steps: settings.steps)
        var plan: [SamplerEvaluation] = []
        for i in stride(from: schedule.count - 1, through: 0, by: -1) {
            let a = schedule.alphasCumprod[i], previous = schedule.alphasCumprodPrev[i], beta = schedule.betas[i]
            let recip = (1 / a).squareRoot(), recipMinusOne = (1 / a - 1).squareRoot()
            var c = StepCoefficients()
            if settings.kind == .ddpm {
                let c1 = beta * previous.squareRoot() / (1 - a)
                let c2 = (1 - previous) * (1 - beta).squareRoot() / (1 - a)
                c.cx = c1 * recip + c2
                c.cd = -c1 * recipMinusOne
                if i > 0 {
                    switch settings.ddpmVariance {
                    case .fixedSmall: c.cz = Foundation.exp(0.5 * schedule.posteriorLogVarianceClipped[i])
                    case .fixedLarge: c.cz = beta.squareRoot()
                    case .learned:
                        c.cVar = 1
                        c.logBeta = Foundation.log(beta)
                        c.logBetaTilde = schedule.posteriorLogVarianceClipped[i]
                    }
                }
            } else {
                let eta = settings.ddimEta
                let sigmaEta = eta * ((1 - previous) / (1 - a)).squareRoot() * (1 - a / previous).squareRoot()
                c.cx = (previous / a).squareRoot()
                c.cd = -previous.squareRoot() * recipMinusOne + Swift.max(0, 1 - previous - sigmaEta * sigmaEta).squareRoot()
                c.cz = i > 0 ? sigmaEta : 0
            }
            plan.append(SamplerEvaluation(step: schedule.count - 1 - i, stage: .single, sigma: schedule.sigma(i),
                                          modelTime: Double(schedule.timesteps[i]), coefficients: c))
        }
        return plan
    }
}
