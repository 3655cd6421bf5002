import LoomCompiler
import LoomData
import LoomDiffusion
import LoomGraphs
import LoomIR
import LoomRuntime
import LoomTraining

/// Scope of the step graph's nodes after the network (guidance and solver update).
public let samplerScope = "sampler"

/// A network traced into a step graph: `(builder, x, t, y) → (final head, intermediate head)`.
/// x [N, C, H, W] f32, t [N] f32, y [N] i64; heads [N, C_out, H, W].
public typealias StepNetwork = (GraphBuilder, Tensor, Tensor, Tensor) -> (final: Tensor, inter: Tensor?)

/// Builds one sampler step as a graph: network evaluation(s), guidance and the solver update, so the
/// compiler can fuse everything after the heads into one elementwise kernel (`SamplerStepTail`).
///
/// Inputs: `x` [B, C, H, W] the current state; `t` [B] f32 the model time (DDPM: the original integer
/// step); `y` [B] i64 labels; `z`, `anchor` [B, C, H, W]; `coef` f32 [`StepCoefficients.count`]
/// (layout in `StepCoefficients`).
///
/// With `cfg` the network runs on the doubled batch `[x; x]`, `[t; t]`, `[y; ∅]` (∅ = `numClasses`)
/// and the halves are combined as `g_u + s(g_c − g_u)` on all channels, or on the first
/// `guidance.cfgChannels` only (the rest take the conditional half). Before that, each half is
/// guided by IG (`I + w(F − I)`) or autoguidance (`D₀ + w(D₁ − D₀)`, D₀ from `guideNetwork` traced in
/// scope `guide`, so its parameter keys are `guide.…`); without either, F is used.
///
/// Output: `x_next` = `cx·x + cd·D[:, :C] + cz·z + ca·anchor`, plus, with `learnedVariance`
/// (C_out = 2C), `c_var·exp(½(f·log β + (1−f)·log β̃))·z` with `f = (D[:, C:] + 1)/2`.
public func samplerStepGraph(name: String = "sampler_step", batch: Int, sampleShape: [Int], numClasses: Int,
                             guidance: GuidanceSettings, cfg: Bool, learnedVariance: Bool = false,
                             network: StepNetwork, guideNetwork: StepNetwork? = nil) throws -> Graph {
    guard batch > 0, sampleShape.count == 3, sampleShape.allSatisfy({ $0 > 0 }) else {
        throw DiffusionError("sampler step graph: need batch > 0 and a [C, H, W] sample shape, got batch \(batch), shape \(describeShape(sampleShape))")
    }
    if cfg && !guidance.mode.usesCFG {
        throw DiffusionError("sampler step graph: a doubled (CFG) graph needs guidance mode cfg or ig+cfg, got \(guidance.mode.rawValue)")
    }
    if guidance.mode.usesGuideNetwork && guideNetwork == nil {
        throw DiffusionError("autoguidance needs a guide network (the weaker model D₀)")
    }
    let b = GraphBuilder(name: name)
    let imageType = TensorType(.f32, [batch] + sampleShape)
    let x = b.input("x", imageType)
    let t = b.input("t", TensorType(.f32, [batch]))
    let y = b.input("y", TensorType(.i64, [batch]))
    let z = b.input("z", imageType)
    let anchor = b.input("anchor", imageType)
    let coef = b.input("coef", TensorType(.f32, [StepCoefficients.count]))

    var (netX, netT, netY) = (x, t, y)
    if cfg {
        let null = b.constant(Float(numClasses), shape: [batch]).cast(.i64)
        netX = concat([x, x], axis: 0)
        netT = concat([t, t], axis: 0)
        netY = concat([y, null], axis: 0)
    }
    let rows = cfg ? 2 * batch : batch
    let heads = network(b, netX, netT, netY)
    let guideHead = guideNetwork.map { guide in b.scoped("guide") { guide(b, netX, netT, netY).final } }

    let final = heads.final
    let outChannels = final.shape.count == 4 ? final.shape[1] : -1
    guard final.shape == [rows, outChannels] + Array(sampleShape.dropFirst()), outChannels >= sampleShape[0] else {
        throw DiffusionError("sampler step graph: the network returned \(final.type), expected [\(rows), C_out ≥ \(sampleShape[0]), \(sampleShape[1]), \(sampleShape[2])]")
    }
    try guidance.validate(outChannels: outChannels)
    if guidance.mode.usesIG {
        guard let inter = heads.inter, inter.shape == final.shape else {
            throw DiffusionError("Internal Guidance needs the intermediate head (a model with --ig-layer)")
        }
    }
    if let guideHead, guideHead.shape != final.shape {
        throw DiffusionError("autoguidance: the guide network returns \(guideHead.type), the main model \(final.type)")
    }
    let channels = sampleShape[0]
    if learnedVariance && outChannels != 2 * channels {
        throw DiffusionError("learned-variance sampling needs 2·\(channels) output channels (learn_sigma), the network has \(outChannels)")
    }

    let next = b.scoped(samplerScope) { () -> Tensor in
        let weak = guidance.mode.usesIG ? heads.inter : guidance.mode.usesGuideNetwork ? guideHead : nil
        let tail = SamplerStepTail(builder: b, guidance: guidance, cfg: cfg, batch: batch, final: final, weak: weak,
                                   coef: coef)
        return tail.next(x: x, z: z, anchor: anchor, learnedVariance: learnedVariance)
    }
    b.output("x_next", next)
    return try b.build()
}

/// The step graph of a zoo model (and, for autoguidance, its weaker guide model, whose parameters
/// are keyed `guide.…`). Inputs and outputs as in `samplerStepGraph(batch:sampleShape:…)`.
public func samplerStepGraph(model: DiffusionTransformer, guideModel: DiffusionTransformer? = nil, batch: Int,
                             guidance: GuidanceSettings, cfg: Bool,
                             learnedVariance: Bool = false) throws -> Graph {
    let config = model.config
    if let guide = guideModel?.config {
        guard guide.inputSize == config.inputSize, guide.inChannels == config.inChannels,
              guide.outChannels == config.outChannels, guide.numClasses == config.numClasses else {
            throw DiffusionError("autoguidance: the guide model \(guide.displayName) does not match \(config.displayName) in input size, channels or classes")
        }
    }
    let network: StepNetwork = { b, x, t, y in
        let out = model.forward(b, x: x, t: t, y: y)
        return (out.final, out.inter)
    }
    let guideNetwork: StepNetwork? = guideModel.map { guide in
        { b, x, t, y in (guide.forward(b, x: x, t: t, y: y).final, nil) }
    }
    return try samplerStepGraph(name: model.graphName(cfg ? "sample_step_cfg" : "sample_step"), batch: batch,
                                sampleShape: [config.inChannels, config.inputSize, config.inputSize],
                                numClasses: config.numClasses, guidance: guidance, cfg: cfg,
                                learnedVariance: learnedVariance, network: network, guideNetwork: guideNetwork)
}
