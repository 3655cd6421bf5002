import LoomIR

/// 2-D rotary tables shared by every block: `feat_rope.freqs_cos` / `freqs_sin`, [T, head_dim].
public struct RopeTables {
    public let cos: Tensor
    public let sin: Tensor

    public init(_ b: GraphBuilder, grid: Int, headDim: Int) {
        (cos, sin) = b.scoped("feat_rope") {
            (b.parameter("freqs_cos", [grid * grid, headDim], initializer: .ropeCos(gridH: grid, gridW: grid),
                         trainable: false),
             b.parameter("freqs_sin", [grid * grid, headDim], initializer: .ropeSin(gridH: grid, gridW: grid),
                         trainable: false))
        }
    }

    /// x: [N, H, T, hd] → x·cos + rot(x)·sin.
    public func apply(_ x: Tensor) -> Tensor { x * cos + x.rotatePairs() * sin }
}

/// Multi-head self-attention (`attn.qkv`, `attn.proj`), q/k/v outermost in the qkv split,
/// scale head_dim^−½, optional 2-D RoPE on q and k.
public func attention(_ b: GraphBuilder, _ x: Tensor, heads: Int, rope: RopeTables?) -> Tensor {
    b.scoped("attn") {
        let (n, t, d) = (x.shape[0], x.shape[1], x.shape[2])
        let hd = d / heads
        let qkv = linear(b, "qkv", x, 3 * d)                   // [N, T, 3D]
            .reshape([n, t, 3, heads, hd])
            .permute([2, 0, 3, 1, 4])                          // [3, N, H, T, hd]
        var parts = qkv.chunk(3, axis: 0).map { $0.reshape([n, heads, t, hd]) }
        if let rope {
            parts[0] = rope.apply(parts[0])
            parts[1] = rope.apply(parts[1])
        }
        let scale = 1 / Float(hd).squareRoot()
        let scores = (parts[0] * scale).matmul(parts[1], transposeB: true)  // [N, H, T, T]
        let mixed = scores.softmax().matmul(parts[2])                       // [N, H, T, hd]
            .permute([0, 2, 1, 3]).reshape([n, t, d])
        return linear(b, "proj", mixed, d)
    }
}
