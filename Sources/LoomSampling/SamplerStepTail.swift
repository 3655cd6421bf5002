import LoomIR

/// The step graph after the network: IG or autoguidance on each half, CFG across the halves and
/// the solver update, written so that fusion turns it into one `fused_elementwise` launch.
///
/// Every value is computed on the shape of `x_next` ([B, C, H, W]): the heads ([R, C_out, H, W],
/// R = 2B for the doubled batch, rows `0..<B` conditional, `B..<2B` unconditional) are only ever
/// sliced (a half, a channel range) and the slices feed elementwise ops directly, so the kernel
/// reads them in place through operand windows; each coefficient is a [1, 1, 1, 1] slice of `coef`
/// seen as a column ([K, 1, 1, 1]), read the same way. Nothing is copied and nothing else is
/// written: the guided D is not an output (Heun's corrector needs only the anchor, see
/// `SamplerPlan.ode`).
final class SamplerStepTail {
    let builder: GraphBuilder
    let guidance: GuidanceSettings
    /// The heads hold the doubled batch.
    let cfg: Bool
    let batch: Int
    /// [R, C_out, H, W]: the final head.
    let final: Tensor
    /// [R, C_out, H, W]: the head guidance pulls away from (IG: the intermediate head, autoguidance:
    /// the guide model's head); nil without IG or autoguidance.
    let weak: Tensor?
    /// [K, 1, 1, 1]: the `coef` input as a column.
    let coefficients: Tensor
    /// One slice node per coefficient and per head part, shared by every reader (one kernel
    /// operand each).
    private var scalars: [StepCoefficients.Index: Tensor] = [:]
    private var parts: [[Int]: Tensor] = [:]

    init(builder: GraphBuilder, guidance: GuidanceSettings, cfg: Bool, batch: Int, final: Tensor, weak: Tensor?,
         coef: Tensor) {
        self.builder = builder
        self.guidance = guidance
        self.cfg = cfg
        self.batch = batch
        self.final = final
        self.weak = weak
        coefficients = coef.reshape([StepCoefficients.count, 1, 1, 1])
    }

    var outChannels: Int { final.shape[1] }

    /// [1, 1, 1, 1]: coefficient `index`.
    func scalar(_ index: StepCoefficients.Index) -> Tensor {
        if let made = scalars[index] { return made }
        let made = coefficients.slice(axis: 0, index.rawValue..<(index.rawValue + 1))
        scalars[index] = made
        return made
    }

    /// [B, |range|, H, W]: one half of a head (0 conditional, 1 unconditional), channels `range`.
    func part(_ head: Tensor, half: Int, _ range: Range<Int>) -> Tensor {
        let key = [head.id, half, range.lowerBound, range.upperBound]
        if let made = parts[key] { return made }
        var t = head
        if cfg { t = t.slice(axis: 0, (half * batch)..<((half + 1) * batch)) }
        if range != 0..<outChannels { t = t.slice(axis: 1, range) }
        parts[key] = t
        return t
    }

    /// IG / autoguidance on one half: `W + w(F − W)`, or F without a weak head.
    func guided(half: Int, _ range: Range<Int>) -> Tensor {
        let f = part(final, half: half, range)
        guard let weak else { return f }
        let w = part(weak, half: half, range)
        return w + scalar(.weight) * (f - w)
    }

    /// The denoiser D on output channels `range`: with the doubled batch `g_u + s(g_c − g_u)` on the
    /// channels below `cfgChannels` and the conditional half on the rest; else the conditional half.
    func denoiser(_ range: Range<Int>) -> Tensor {
        let conditional = guided(half: 0, range)
        let guidedChannels = guidance.cfgChannels ?? outChannels
        guard cfg, range.lowerBound < guidedChannels else { return conditional }
        let unconditional = guided(half: 1, range)
        var s = scalar(.cfgScale)
        if range.upperBound > guidedChannels {
            // [1, |range|, 1, 1]: s on the guided channels, 1 (the conditional half) on the others.
            // It reads only `coef`, so it runs apart from the heads' kernel.
            s = concat([s.broadcast(to: [1, guidedChannels - range.lowerBound, 1, 1]),
                        builder.constant(1, shape: [1, range.upperBound - guidedChannels, 1, 1])], axis: 1)
        }
        return unconditional + s * (conditional - unconditional)
    }

    /// [B, C, H, W]: `cx·x + cd·D[:, :C] + cz·z + ca·anchor`, plus with `learnedVariance`
    /// `c_var·exp(½(log β̃ + f(log β − log β̃)))·z`, `f = (D[:, C:] + 1)/2`.
    func next(x: Tensor, z: Tensor, anchor: Tensor, learnedVariance: Bool) -> Tensor {
        let channels = x.shape[1]
        var next = scalar(.cx) * x + scalar(.cd) * denoiser(0..<channels) + scalar(.cz) * z + scalar(.ca) * anchor
        if learnedVariance {
            let f = denoiser(channels..<outChannels).affine(scale: 0.5, shift: 0.5)
            // log β̃ + f(log β − log β̃), written on [B, C, H, W] values only (no launch on coef alone).
            let lo = scalar(.logBetaTilde), hi = scalar(.logBeta)
            next = next + scalar(.cVar) * ((lo + f * hi - f * lo) * 0.5).exp() * z
        }
        return next
    }
}
