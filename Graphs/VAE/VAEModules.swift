import LoomIR

// The layers of a KL autoencoder over NCHW activations, with diffusers' parameter keys
// (Docs/pretrained.md gives latent diffusion's equivalents).

/// A convolution `<scope>.weight [O, C, k, k]`, `<scope>.bias [O]`; `padding` (top, left,
/// bottom, right) defaults to "same" for stride 1.
func conv(_ b: GraphBuilder, _ name: String, _ x: Tensor, _ outChannels: Int, kernel: Int, stride: Int = 1,
          padding: [Int]? = nil) -> Tensor {
    b.scoped(name) {
        let c = x.shape[1]
        let weight = b.parameter("weight", [outChannels, c, kernel, kernel],
                                 initializer: .xavierUniform(fanIn: c * kernel * kernel, fanOut: outChannels * kernel * kernel))
        let bias = b.parameter("bias", [outChannels], initializer: .zeros)
        let same = kernel / 2
        return x.conv2d(weight, bias, stride: stride, padding: padding ?? [same, same, same, same])
    }
}

/// GroupNorm over `[N, C, H, W]` with a per-channel affine `<scope>.weight`, `<scope>.bias`:
/// each group's C/G channels are normalised together (a layer norm over `[N, G, C/G·H·W]`).
func groupNorm(_ b: GraphBuilder, _ name: String, _ x: Tensor, groups: Int, eps: Float) -> Tensor {
    b.scoped(name) {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let weight = b.parameter("weight", [c], initializer: .ones)
        let bias = b.parameter("bias", [c], initializer: .zeros)
        let normalized = x.reshape([n, groups, (c / groups) * h * w]).layerNorm(eps: eps).reshape([n, c, h, w])
        return normalized * weight.reshape([c, 1, 1]) + bias.reshape([c, 1, 1])
    }
}

/// ResNet block: norm1 → SiLU → conv1 → norm2 → SiLU → conv2, plus the input (through the 1×1
/// `conv_shortcut` when the channel count changes).
func resnetBlock(_ b: GraphBuilder, _ name: String, _ x: Tensor, _ outChannels: Int, groups: Int, eps: Float) -> Tensor {
    b.scoped(name) {
        var h = groupNorm(b, "norm1", x, groups: groups, eps: eps).silu()
        h = conv(b, "conv1", h, outChannels, kernel: 3)
        h = groupNorm(b, "norm2", h, groups: groups, eps: eps).silu()
        h = conv(b, "conv2", h, outChannels, kernel: 3)
        let shortcut = x.shape[1] == outChannels ? x : conv(b, "conv_shortcut", x, outChannels, kernel: 1)
        return shortcut + h
    }
}

/// Single-head self-attention over the H·W positions (`group_norm`, `to_q`, `to_k`, `to_v`,
/// `to_out.0`; scale C^−½), added to the input.
func spatialAttention(_ b: GraphBuilder, _ name: String, _ x: Tensor, groups: Int, eps: Float) -> Tensor {
    b.scoped(name) {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let tokens = groupNorm(b, "group_norm", x, groups: groups, eps: eps)
            .reshape([n, c, h * w]).permute([0, 2, 1])                       // [N, T, C]
        let q = linear(b, "to_q", tokens, c), k = linear(b, "to_k", tokens, c), v = linear(b, "to_v", tokens, c)
        let scale = 1 / Float(c).squareRoot()
        let mixed = (q * scale).matmul(k, transposeB: true).softmax().matmul(v)  // [N, T, C]
        let out = linear(b, "to_out.0", mixed, c).permute([0, 2, 1]).reshape([n, c, h, w])
        return x + out
    }
}

/// Halves H and W: a 3×3 convolution with stride 2 over the input padded by one row at the bottom
/// and one column at the right (`downsamplers.0.conv`).
func downsample(_ b: GraphBuilder, _ name: String, _ x: Tensor) -> Tensor {
    conv(b, name, x, x.shape[1], kernel: 3, stride: 2, padding: [0, 0, 1, 1])
}

/// Doubles H and W: nearest-neighbour repetition, then a 3×3 convolution (`upsamplers.0.conv`).
func upsample(_ b: GraphBuilder, _ name: String, _ x: Tensor) -> Tensor {
    let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let repeated = x.reshape([n, c, h, 1, w, 1]).broadcast(to: [n, c, h, 2, w, 2]).reshape([n, c, 2 * h, 2 * w])
    return conv(b, name, repeated, c, kernel: 3)
}
