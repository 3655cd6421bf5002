import LoomIR

/// `y = x Wᵀ + b` with a PyTorch-layout weight `[out, in]` named `<scope>.weight` / `<scope>.bias`.
public struct Linear {
    public let weight: Tensor  // [out, in]
    public let bias: Tensor?   // [out]

    /// Declares the parameters in the builder's current scope. `zeroInit` gives adaLN-Zero's
    /// zero weights and biases; otherwise Xavier-uniform weights and zero biases.
    public init(_ b: GraphBuilder, _ inFeatures: Int, _ outFeatures: Int, bias: Bool = true,
                zeroInit: Bool = false, weightInit: Initializer? = nil) {
        let initializer = zeroInit ? .zeros : (weightInit ?? .xavierUniform(fanIn: inFeatures, fanOut: outFeatures))
        weight = b.parameter("weight", [outFeatures, inFeatures], initializer: initializer)
        self.bias = bias ? b.parameter("bias", [outFeatures], initializer: .zeros) : nil
    }

    /// x: [..., in] → [..., out].
    public func callAsFunction(_ x: Tensor) -> Tensor {
        let y = x.matmul(weight, transposeB: true)
        return bias.map { y + $0 } ?? y
    }
}

/// Declares a `Linear` in a child scope and applies it.
public func linear(_ b: GraphBuilder, _ name: String, _ x: Tensor, _ outFeatures: Int,
                   zeroInit: Bool = false, weightInit: Initializer? = nil) -> Tensor {
    b.scoped(name) { Linear(b, x.shape.last!, outFeatures, zeroInit: zeroInit, weightInit: weightInit)(x) }
}
