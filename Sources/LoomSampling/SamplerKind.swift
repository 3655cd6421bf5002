import LoomCompiler
import LoomData
import LoomDiffusion
import LoomGraphs
import LoomIR
import LoomRuntime
import LoomTraining
/// The samplers the host loop offers (Docs/conventions.md §2–§4).
///
/// - `euler`: probability-flow ODE, explicit Euler (flow objectives).
/// - `heun`: ODE, Heun's method (two network evaluations per interval: `k1 = f(t0, y0)`,
///   `k2 = f(t1, y0 + dt·k1)`, `y1 = y0 + dt(k1 + k2)/2`) (flow objectives).
/// - `eulerMaruyama`: the IG-SiT SDE sampler (flow objectives): grid `linspace(1, 0.04, N)` in σ,
///   drift `v − ½g²·s` with `g² = 2σ`, score `s = −((1−σ)v + x)/σ`, noise `√(2σ)·√|dt|·z`, then a
///   last deterministic drift step to σ = 0.
/// - `ddpm`: ancestral sampling (DDPM ε-prediction), respaced to N evenly spaced steps of the 1000.
/// - `ddim`: DDIM (η = 0 by default), respaced the same way.
public enum SamplerKind: String, CaseIterable, Sendable, Codable {
    case euler
    case heun
    case eulerMaruyama = "euler_maruyama"
    case ddpm
    case ddim

    /// The kinds that integrate a flow (velocity-prediction) model.
    public var isFlow: Bool { self == .euler || self == .heun || self == .eulerMaruyama }
    /// The kind draws fresh noise during sampling (besides the initial noise).
    public var isStochastic: Bool { self == .eulerMaruyama || self == .ddpm }
}

/// The reverse-process variance of ancestral DDPM sampling.
public enum DDPMVariance: String, CaseIterable, Sendable, Codable {
    /// The posterior variance β̃_t (DiT's `FIXED_SMALL`), log clipped at step 0 to β̃_1.
    case fixedSmall = "fixed_small"
    /// β_t with the first entry replaced by β̃_1 (`FIXED_LARGE`).
    case fixedLarge = "fixed_large"
    /// learn_sigma models: `log σ² = f·log β_t + (1−f)·log β̃_t`, `f = (v + 1)/2`, v the second half
    /// of the output channels (`LEARNED_RANGE`).
    case learned
}

/// Everything that fixes the time grid and per-step coefficients of a sampling run.
///
/// `steps` counts integration intervals for the flow ODE samplers (SiT's / LightningDiT's
/// `num_steps` grid *points* is `steps + 1`: LightningDiT's 125 points are `steps: 124`, 248 NFE with
/// Heun), Euler–Maruyama grid points before the final step (IG-SiT's `num_steps`: `steps − 1`
/// stochastic steps, then one deterministic step to 0, `steps` network evaluations), and respaced
/// steps for DDPM/DDIM (DiT's `num_sampling_steps`).
public struct SamplerSettings: Equatable, Sendable, Codable {
    public var kind: SamplerKind
    public var steps: Int
    public var objective: Objective
    /// Timestep shift s (`t' = s·t/(1+(s−1)t)` on data-time τ = 1 − σ, LightningDiT: 0.3). Flow kinds
    /// only; 1 is no shift.
    public var shift: Double
    /// Heun: replace the last interval's correction by a plain Euler step (one NFE fewer). The
    /// default follows the objective's official sampler: true for `flow_repa` (REPA's and the IG
    /// code's `euler_sampler` corrects only while `i < num_steps − 1`), false otherwise (SiT's and
    /// LightningDiT's torchdiffeq `heun2`: the full Heun step every interval).
    public var heunLastStepEuler: Bool
    /// Euler–Maruyama: the last grid point before the final deterministic step (IG-SiT: 0.04).
    public var sdeLastSigma: Double
    /// DDIM η (0: deterministic).
    public var ddimEta: Double
    /// Ancestral DDPM variance.
    public var ddpmVariance: DDPMVariance
    /// The training schedule DDPM kinds respace (1000 linear-β steps).
    public var trainSteps: Int

    public init(kind: SamplerKind, steps: Int, objective: Objective, shift: Double = 1,
                heunLastStepEuler: Bool? = nil, sdeLastSigma: Double = 0.04, ddimEta: Double = 0,
                ddpmVariance: DDPMVariance = .fixedSmall, trainSteps: Int = 1000) {
        self.kind = kind
        self.steps = steps
        self.objective = objective
        self.shift = shift
        self.heunLastStepEuler = heunLastStepEuler ?? Self.officialHeunLastStepEuler(objective)
        self.sdeLastSigma = sdeLastSigma
        self.ddimEta = ddimEta
        self.ddpmVariance = ddpmVariance
        self.trainSteps = trainSteps
    }

    /// Whether the official sampler of models trained with `objective` ends Heun with an Euler step.
    public static func officialHeunLastStepEuler(_ objective: Objective) -> Bool { objective == .flowRepa }

    /// The ancestral DDPM run uses the learned-variance tail of the step graph.
    public var learnedVariance: Bool { kind == .ddpm && ddpmVariance == .learned }

    /// Checks kind, objective and step count fit together.
    public func validate() throws {
        if kind.isFlow && objective == .ddpmEps {
            throw DiffusionError("sampler \(kind.rawValue) integrates a flow model; the objective is \(objective.rawValue) (use ddpm or ddim)")
        }
        if !kind.isFlow && objective != .ddpmEps {
            throw DiffusionError("sampler \(kind.rawValue) needs a ddpm_eps model; the objective is \(objective.rawValue) (use euler, heun or euler_maruyama)")
        }
        let minimum = kind == .eulerMaruyama ? 2 : 1
        guard steps >= minimum else {
            throw DiffusionError("sampler \(kind.rawValue) needs at least \(minimum) step(s), got \(steps)")
        }
        if !kind.isFlow && steps > trainSteps {
            throw DiffusionError("cannot respace \(trainSteps) DDPM steps to \(steps)")
        }
        guard shift > 0, shift.isFinite else { throw DiffusionError("timestep shift must be positive, got \(shift)") }
        if kind == .eulerMaruyama && !(sdeLastSigma > 0 && sdeLastSigma < 1) {
            throw DiffusionError("the SDE's last noise level must lie in (0, 1), got \(sdeLastSigma)")
        }
        guard ddimEta >= 0 else { throw DiffusionError("DDIM eta must be >= 0, got \(ddimEta)") }
    }
}
