import LoomIR

/// DiT MLP: `fc1` D→4D, GELU (tanh approximation), `fc2` 4D→D.
public func mlp(_ b: GraphBuilder, _ x: Tensor) -> Tensor {
    b.scoped("mlp") {
        let d = x.shape.last!
        let h = linear(b, "fc1", x, 4 * d).geluTanh()
        return linear(b, "fc2", h, d)
    }
}

/// LightningDiT SwiGLU: `w12` D→2h, `w3(SiLU(x1) ⊙ x2)` with h = int(2/3·4D).
public func swiglu(_ b: GraphBuilder, _ x: Tensor, hidden: Int) -> Tensor {
    b.scoped("mlp") {
        let d = x.shape.last!
        let halves = linear(b, "w12", x, 2 * hidden).chunk(2, axis: -1)
        return linear(b, "w3", halves[0].silu() * halves[1], d)
    }
}
