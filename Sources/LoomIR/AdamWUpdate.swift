/// The attributes of the fused optimizer kernel `adamw`: AdamW (bias corrected, decoupled weight
/// decay) and the EMA of the weights for `segments` parameters in one pass over flat storage.
///
/// Operands, in order (N = `segments`):
/// - `N` gradients g₀…g_{N−1} (any layout the planner chose);
/// - the state: `N` parameters, `N` first moments m, `N` second moments v, and with `ema` `N` EMA
///   copies, segment i of each with the shape of g_i;
/// - scalars (rank 0): `step` = lr / (1 − β₁ᵗ), `sqrt_bias2` = √(1 − β₂ᵗ), then `coef` (the
///   gradient-clipping factor) with `clip`, `decay` = 1 − lr·wd with `decay`, and `d`, `1 − d`
///   (the EMA decay and its complement) with `ema`.
///
/// The result is the state after the step, flat `[P | m | v | ema]` with P elements per part
/// (P = Σ |g_i|), segment i at offset Σ_{j<i} |g_j| of each part. Per element, with
/// g = g_raw·coef: m' = β₁·m + (1 − β₁)·g, v' = β₂·v + (1 − β₂)·g², p' = p·decay − step·m' /
/// (√v' / sqrt_bias2 + eps), ema' = ema·d + p'·(1 − d). Lowering lays the state operands out back
/// to back in the parameter region so the kernel updates them in place.
public struct AdamWUpdate: Equatable, Sendable {
    public var segments: Int
    public var beta1: Float
    public var beta2: Float
    public var eps: Float
    /// A clipping factor operand multiplies every gradient.
    public var clip: Bool
    /// A decoupled weight-decay factor operand multiplies every parameter.
    public var decay: Bool
    /// EMA copies are part of the state.
    public var ema: Bool

    public init(segments: Int, beta1: Float, beta2: Float, eps: Float, clip: Bool, decay: Bool, ema: Bool) {
        self.segments = segments
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.clip = clip
        self.decay = decay
        self.ema = ema
    }

    /// Parts of the state: parameter, m, v (and the EMA).
    public var stateParts: Int { ema ? 4 : 3 }

    /// Number of rank-0 operands after the state.
    public var scalarCount: Int { 2 + (clip ? 1 : 0) + (decay ? 1 : 0) + (ema ? 2 : 0) }

    /// Total operand count.
    public var operandCount: Int { segments * (1 + stateParts) + scalarCount }

    /// Operand index of segment `i` of state part `part` (0 parameter, 1 m, 2 v, 3 EMA).
    public func stateOperand(part: Int, segment i: Int) -> Int { segments * (1 + part) + i }

    /// Operand index of the first scalar.
    public var firstScalar: Int { segments * (1 + stateParts) }
}
