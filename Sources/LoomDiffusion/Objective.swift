import LoomCompiler
import LoomData
import LoomGraphs
import LoomIR

/// Training objectives (Docs/conventions.md §5): DDPM ε-prediction, and flow matching in the REPA/IG-SiT
/// convention (t = 1 noise, target ε − x₀) or the SiT/LightningDiT one (t = 0 noise, target x₀ − ε).
public enum Objective: String, CaseIterable, Sendable, Codable {
    case ddpmEps = "ddpm_eps"
    case flowRepa = "flow_repa"
    case flowSit = "flow_sit"
}

/// What the loss adds up: both heads' MSE with weight λ on the IG head, and optionally
/// LightningDiT's cosine velocity-direction term, DDPM's variational-bound term (learn_sigma
/// models), and the IG training-acceleration target.
public struct LossSettings: Sendable, Codable, Equatable {
    public var objective: Objective
    public var igLambda: Float
    public var cosineLoss: Bool
    /// Training-acceleration variant (paper §4.3, Eq. 7): the final head's target becomes
    /// `u + ω·sg(D_f − D_i)`; the IG head keeps the plain target. 0 turns it off.
    public var omega: Float
    /// Add the variational-bound term of the hybrid loss (DDPM with learn_sigma only).
    public var vbLoss: Bool

    public init(objective: Objective, igLambda: Float = 0.5, cosineLoss: Bool = false, omega: Float = 0,
                vbLoss: Bool = false) {
        self.objective = objective
        self.igLambda = igLambda
        self.cosineLoss = cosineLoss
        self.omega = omega
        self.vbLoss = vbLoss
    }

    /// The loss weights a compiled step takes at run time (graphs with an IG head only): λ
    /// (`Naming.igLambdaInput`) and ω (`Naming.omegaInput`). One plan serves a sweep over both.
    public var runtimeInputs: [String: Float] { [Naming.igLambdaInput: igLambda, Naming.omegaInput: omega] }

    /// The settings a compiled loss fixes (objective, cosine term, variational-bound term) differ
    /// from `other`'s: each difference as (flag, this value, other value).
    public func compiledDifferences(from other: LossSettings) -> [(String, String, String)] {
        var out: [(String, String, String)] = []
        if objective != other.objective { out.append(("--objective", objective.rawValue, other.objective.rawValue)) }
        if cosineLoss != other.cosineLoss { out.append(("--cosine-loss", "\(cosineLoss)", "\(other.cosineLoss)")) }
        if vbLoss != other.vbLoss { out.append(("--vb-loss", "\(vbLoss)", "\(other.vbLoss)")) }
        return out
    }
}

/// Builds the forward-plus-objective graph. Inputs: `x0`, `eps` [N, C, H, W], `t` [N], `y` [N] i64,
/// and for DDPM `ddpm_coef` [N, 2] = (√ᾱ_t, √(1−ᾱ_t)) from `DDPMSchedule`. Outputs: `xt`, `target`
/// (flow), `out_final`, `out_inter` (IG), `loss_final`, `loss_inter` (IG), `loss`.
public func objectiveGraph(_ model: DiffusionTransformer, batch: Int, settings: LossSettings) throws -> Graph {
    let config = model.config
    let b = GraphBuilder(name: model.graphName("loss"))
    let s = config.inputSize
    let imageType = TensorType(.f32, [batch, config.inChannels, s, s])
    let x0 = b.input("x0", imageType), eps = b.input("eps", imageType)
    let t = b.input("t", TensorType(.f32, [batch]))
    let y = b.input("y", TensorType(.i64, [batch]))
    let perSample = [batch, 1, 1, 1]
    b.annotate(scope: "objective", block: BlockAttribution.objective)
    let (xt, target): (Tensor, Tensor) = b.scoped("objective") {
        switch settings.objective {
        case .ddpmEps:
            let coef = b.input("ddpm_coef", TensorType(.f32, [batch, 2]))
            let a = coef.slice(axis: 1, 0..<1).reshape(perSample), sigma = coef.slice(axis: 1, 1..<2).reshape(perSample)
            return (a * x0 + sigma * eps, eps)
        case .flowRepa:
            let tt = t.reshape(perSample)
            return ((1 - tt) * x0 + tt * eps, eps - x0)
        case .flowSit:
            let tt = t.reshape(perSample)
            return (tt * x0 + (1 - tt) * eps, x0 - eps)
        }
    }
    b.output("xt", xt)
    if settings.objective != .ddpmEps { b.output("target", target) }
    let out = model.forward(b, x: xt, t: t, y: y)
    b.output("out_final", out.final)
    if let inter = out.inter { b.output("out_inter", inter) }
    if settings.omega != 0 && out.inter == nil {
        throw DiffusionError("the training-acceleration target (omega \(settings.omega)) needs an IG head: pass --ig-layer")
    }
    if settings.vbLoss && !(settings.objective == .ddpmEps && config.learnSigma) {
        throw DiffusionError("the variational-bound term needs a DDPM objective and a learn_sigma model")
    }
    let loss = b.scoped("objective") { () -> Tensor in
        var finalTarget = target
        // λ and ω are run-time inputs (`LossSettings.runtimeInputs`); ω = 0 adds exactly 0.
        let scalar = TensorType(.f32, [])
        let weights = out.inter.map { _ in (lambda: b.input(Naming.igLambdaInput, scalar), omega: b.input(Naming.omegaInput, scalar)) }
        if let inter = out.inter, let omega = weights?.omega {
            let gap = meanChannels(out.final, config.inChannels) - meanChannels(inter, config.inChannels)
            finalTarget = target + gap.stopGradient() * omega
        }
        let lossFinal = headMSE(out.final, finalTarget, inChannels: config.inChannels)
        b.output(Naming.finalLossOutput, lossFinal)
        var total = lossFinal
        if let inter = out.inter {
            let lossInter = headMSE(inter, target, inChannels: config.inChannels)
            b.output(Naming.intermediateLossOutput, lossInter)
            total = total + lossInter * weights!.lambda
        }
        if settings.cosineLoss {
            // LightningDiT's direction term, on the final head only (as the IG reference does).
            total = total + cosineDirectionLoss(meanChannels(out.final, config.inChannels), target)
        }
        if settings.vbLoss {
            let coef = b.input("ddpm_vb_coef", TensorType(.f32, [batch, DDPMSchedule.vbColumns]))
            let vb = variationalBoundTerm(output: out.final, x0: x0, xt: xt, coef: coef, inChannels: config.inChannels)
            b.output("loss_vb", vb)
            total = total + vb
        }
        return total
    }
    b.output(Naming.lossOutput, loss)
    return try b.build()
}

/// The prediction's first `inChannels` channels (all of them unless learn_sigma doubled the output).
func meanChannels(_ prediction: Tensor, _ inChannels: Int) -> Tensor {
    prediction.shape[1] == inChannels ? prediction : prediction.slice(axis: 1, 0..<inChannels)
}

/// One head's MSE against the target: the mean over batch and pixels of the squared error.
func headMSE(_ prediction: Tensor, _ target: Tensor, inChannels: Int) -> Tensor {
    (meanChannels(prediction, inChannels) - target).square().meanAll()
}

/// `mean over batch and pixels of (1 − cos_sim over channels(v̂, u))`, with PyTorch's guard
/// `a·b / sqrt(max(‖a‖²‖b‖², ε²))`, ε = 1e-8: the clamp comes before the square root, so a zero
/// prediction (the zero-initialised head) gives a zero gradient, not NaN. a, b: [N, C, H, W] → scalar.
func cosineDirectionLoss(_ a: Tensor, _ b: Tensor) -> Tensor {
    let dot = (a * b).sum(axes: [1])                                    // [N, H, W]
    let squared = a.square().sum(axes: [1]) * b.square().sum(axes: [1])
    let floor = a.builder.constant(1e-16)
    return (1 - dot / squared.maximum(floor).sqrt()).meanAll()
}
