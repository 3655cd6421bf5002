import LoomIR

/// AdamW hyper-parameters. β₁, β₂, ε and whether an EMA copy exists are fixed when the step is
/// compiled; the learning rate, the bias corrections, the EMA decay, the clip norm and the weight
/// decay are run-time inputs of the step (`Naming.learningRateInput`, …), so one compiled plan serves
/// every step, any schedule and a sweep over those values.
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

    /// Run-time scalars for step `t` (1-based) at learning rate `lr`. No clip is an infinite one:
    /// the clipping factor `min(1, ∞)` is exactly 1.
    public func stepInputs(step t: Int, lr: Float) -> [String: Float] {
        var inputs = [Naming.learningRateInput: lr,
                      Naming.firstBiasInput: Float(1 - Double(beta1).power(t)),
                      Naming.secondBiasInput: Float(1 - Double(beta2).power(t)),
                      Naming.clipInput: clipNorm ?? .infinity,
                      Naming.weightDecayInput: weightDecay]
        if let d = emaDecay(atStep: t) { inputs[Naming.emaDecayInput] = d }
        return inputs
    }

    /// The settings a compiled step fixes (β₁, β₂, ε, EMA or not) differ from `other`'s: each
    /// difference as (name, this value, other value).
    public func compiledDifferences(from other: AdamWSettings) -> [(String, String, String)] {
        var out: [(String, String, String)] = []
        if beta1 != other.beta1 { out.append(("AdamW β₁", "\(beta1)", "\(other.beta1)")) }
        if beta2 != other.beta2 { out.append(("AdamW β₂", "\(beta2)", "\(other.beta2)")) }
        if eps != other.eps { out.append(("AdamW ε", "\(eps)", "\(other.eps)")) }
        if (emaDecay == nil) != (other.emaDecay == nil) {
            out.append(("--ema-decay", emaDecay.map { "\($0)" } ?? "0 (no EMA)", other.emaDecay.map { "\($0)" } ?? "0 (no EMA)"))
        }
        return out
    }
}

private extension Double {
    func power(_ n: Int) -> Double {
        var result = 1.0
        for _ in 0..<n { result *= self }
        return result
    }
}
