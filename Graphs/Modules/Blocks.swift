import LoomIR

/// The adaLN-Zero transformer block (`blocks.N`): shift/scale/gate for attention and MLP from
/// `Linear(SiLU(c))` (`adaLN_modulation.1`, 6D, zero-initialised).
/// x: [N, T, D], c: [N, D] → [N, T, D].
public func ditBlock(_ b: GraphBuilder, _ x: Tensor, _ c: Tensor, config: ModelConfig, rope: RopeTables?) -> Tensor {
    let d = config.hidden
    let mod = b.scoped("adaLN_modulation") { linear(b, "1", c.silu(), 6 * d, zeroInit: true) }
        .chunk(6, axis: 1)                                         // 6 × [N, D]
    let n = x.shape[0]
    let norm1 = b.scoped("norm1") { TokenNorm(b, dim: d, rms: config.lightning) }
    let attended = attention(b, modulate(norm1(x), shift: mod[0], scale: mod[1]), heads: config.heads, rope: rope)
    var h = x + mod[2].reshape([n, 1, d]) * attended
    let norm2 = b.scoped("norm2") { TokenNorm(b, dim: d, rms: config.lightning) }
    let inner = modulate(norm2(h), shift: mod[3], scale: mod[4])
    let mixed = config.lightning ? swiglu(b, inner, hidden: config.swigluHidden) : mlp(b, inner)
    h = h + mod[5].reshape([n, 1, d]) * mixed  // [N, T, D]; a shape error is recorded by the builder
    return h
}

/// The output head (`final_layer` or the IG head `final_layer_xr`): norm, adaLN shift/scale from c,
/// linear to p²·C_out, unpatchify. x: [N, T, D], c: [N, D] → [N, C_out, H, W].
public func finalLayer(_ b: GraphBuilder, _ x: Tensor, _ c: Tensor, config: ModelConfig) -> Tensor {
    let d = config.hidden, p = config.patch
    let norm = b.scoped("norm_final") { TokenNorm(b, dim: d, rms: config.lightning) }
    let mod = b.scoped("adaLN_modulation") { linear(b, "1", c.silu(), 2 * d, zeroInit: true) }.chunk(2, axis: 1)
    let h = modulate(norm(x), shift: mod[0], scale: mod[1])
    let patches = linear(b, "linear", h, p * p * config.outChannels, zeroInit: true)  // [N, T, p²·C_out]
    return patches.unpatchify(p, gridH: config.gridSize, gridW: config.gridSize)
}
