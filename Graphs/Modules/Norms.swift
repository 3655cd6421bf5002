import LoomIR

/// LayerNorm without affine (DiT) or RMSNorm with a learnable weight (LightningDiT), eps 1e-6.
public struct TokenNorm {
    public let weight: Tensor?  // [D], RMSNorm only
    public let rms: Bool
    public static let eps: Float = 1e-6

    /// Declares the norm in the current scope (`<scope>.weight` for RMSNorm).
    public init(_ b: GraphBuilder, dim: Int, rms: Bool) {
        self.rms = rms
        weight = rms ? b.parameter("weight", [dim], initializer: .ones) : nil
    }

    /// x: [..., D] → [..., D], normalised over the last axis.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        if let weight { return x.rmsNorm(eps: Self.eps) * weight }
        return x.layerNorm(eps: Self.eps)
    }
}

/// adaLN modulation `h·(1 + scale) + shift`; h: [N, T, D], shift and scale: [N, D].
public func modulate(_ h: Tensor, shift: Tensor, scale: Tensor) -> Tensor {
    let n = scale.shape[0], d = scale.shape[1]
    let s = scale.reshape([n, 1, d]) + 1
    return h * s + shift.reshape([n, 1, d])
}
