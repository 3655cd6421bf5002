import LoomIR

/// A gradient flowing into one operand: a full-size tensor, or the adjoint of a slice of it.
enum Contribution {
    case dense(Tensor)
    case slice(axis: Int, start: Int, end: Int, Tensor)
}

/// Vector–Jacobian products of every differentiable op, written as graph code over primitives.
enum VJPRules {
    /// Which operands carry gradient (integer indices of gather/scatter do not).
    static func differentiableOperands(_ op: Op, arity: Int) -> [Bool] {
        switch op {
        case .gather: return [true, false]
        case .scatterAdd: return [true, false]
        case .cast, .stopGradient: return [Bool](repeating: false, count: arity)
        default: return [Bool](repeating: true, count: arity)
        }
    }

    /// Fused kernels autodiff accepts (made before it by `AttentionKernelPass`).
    static func differentiableKernels(_ kernel: FusedKernel) -> Bool {
        if case .tokenAttention = kernel { return true }
        return false
    }

    /// Contributions of adjoint `g` (of `node`'s output) to each operand, nil where none.
    /// With `kernels`, normalisations get the one-pass `norm_backward` kernel instead of the
    /// primitive rule (both are tested against each other).
    static func pullback(_ node: Node, _ g: Tensor, _ b: GraphBuilder, operandNeeded: [Bool], kernels: Bool = false) -> [Contribution?] {
        let x = node.inputs.map { b.tensor($0) }
        let y = b.tensor(node.id)
        func dense(_ t: Tensor?) -> Contribution? { t.map { .dense($0) } }
        switch node.op {
        case .input, .parameter, .constant, .iota, .cast, .stopGradient:
            return node.inputs.map { _ in nil }
        case .unary(let f):
            return [dense(unary(f, x[0], y, g, b))]
        case .affine(let scale, _):
            return [dense(g * scale)]
        case .binary(let f):
            let (a, c) = (x[0], x[1])
            var ga: Tensor?, gc: Tensor?
            switch f {
            case .add: (ga, gc) = (g, g)
            case .sub: (ga, gc) = (g, -g)
            case .mul: (ga, gc) = (operandNeeded[0] ? g * c : nil, operandNeeded[1] ? g * a : nil)
            case .div: (ga, gc) = (operandNeeded[0] ? g / c : nil, operandNeeded[1] ? -(g * y / c) : nil)
            case .max, .min:
                // 1 where a wins, ½ on ties, 0 where c wins.
                let diff = f == .max ? a - c : c - a
                let pickA = diff.unary(.sign) * 0.5 + 0.5
                (ga, gc) = (g * pickA, g * (1 - pickA))
            }
            return [dense(ga.map { reduce($0, to: a.shape) }), dense(gc.map { reduce($0, to: c.shape) })]
        case .matmul(let ta, let tb):
            return matmulPullback(x[0], x[1], g, ta: ta, tb: tb, needed: operandNeeded).map(dense)
        case .reduce(let f, let axes, let keepDims):
            var kept = x[0].shape
            for axis in axes { kept[axis] = 1 }
            let gk = keepDims ? g : g.reshape(kept)
            switch f {
            case .sum:
                return [dense(gk.broadcast(to: x[0].shape))]
            case .mean:
                let count = axes.reduce(1) { $0 * x[0].shape[$1] }
                return [dense((gk * (1 / Float(count))).broadcast(to: x[0].shape))]
            case .max:
                let winner = 1 - (x[0] - (keepDims ? y : y.reshape(kept))).abs().unary(.sign)
                return [dense(gk * winner)]
            }
        case .softmax:
            let inner = (g * y).sum(axes: [y.rank - 1], keepDims: true)
            return [dense(y * (g - inner))]
        case .layerNorm(let eps) where kernels:
            return [dense(b.append(.fused(.normBackward(eps: eps, rms: false)), [x[0], g]))]
        case .rmsNorm(let eps) where kernels:
            return [dense(b.append(.fused(.normBackward(eps: eps, rms: true)), [x[0], g]))]
        case .layerNorm(let eps):
            let last = x[0].rank - 1
            let centered = x[0] - x[0].mean(axes: [last], keepDims: true)
            let rstd = (centered.square().mean(axes: [last], keepDims: true) + eps).rsqrt()
            let gMean = g.mean(axes: [last], keepDims: true)
            let gyMean = (g * y).mean(axes: [last], keepDims: true)
            return [dense(rstd * (g - gMean - y * gyMean))]
        case .rmsNorm(let eps):
            let last = x[0].rank - 1
            let r = (x[0].square().mean(axes: [last], keepDims: true) + eps).rsqrt()
            let gyMean = (g * y).mean(axes: [last], keepDims: true)
            return [dense(r * (g - y * gyMean))]
        case .reshape:
            return [dense(g.reshape(x[0].shape))]
        case .permute(let perm):
            var inverse = [Int](repeating: 0, count: perm.count)
            for (i, p) in perm.enumerated() { inverse[p] = i }
            return [dense(g.permute(inverse))]
        case .slice(let axis, let start, let end):
            return [.slice(axis: axis, start: start, end: end, g)]
        case .concat(let axis):
            var offset = 0
            return x.map { part in
                defer { offset += part.shape[axis] }
                return .dense(g.slice(axis: axis, offset..<(offset + part.shape[axis])))
            }
        case .broadcast:
            return [dense(reduce(g, to: x[0].shape))]
        case .gather:
            return [dense(g.scatterAdd(x[1], rows: x[0].shape[0])), nil]
        case .scatterAdd:
            return [dense(g.gather(x[1])), nil]
        case .patchify(let p):
            let (n, c, h, w) = (x[0].shape[0], x[0].shape[1], x[0].shape[2], x[0].shape[3])
            return [dense(g.reshape([n, h / p, w / p, c, p, p]).permute([0, 3, 1, 4, 2, 5]).reshape([n, c, h, w]))]
        case .unpatchify(let p, let gh, let gw):
            let (n, c) = (g.shape[0], g.shape[1])
            return [dense(g.reshape([n, c, gh, p, gw, p]).permute([0, 2, 4, 3, 5, 1])
                .reshape([n, gh * gw, p * p * c]))]
        case .rotatePairs:
            return [dense(-g.rotatePairs())]
        case .fused(.tokenAttention(let heads, let scale)):
            return [dense(b.append(.fused(.tokenAttentionBackward(heads: heads, scale: scale)), [x[0], g]))]
        case .fused:
            preconditionFailure("autodiff runs before fusion (checked by Autodiff.differentiate)")
        case .conv2d:
            preconditionFailure("conv2d has no gradient rule (checked by Autodiff.differentiate)")
        }
    }

    /// Derivative rules of the unary functions (y is the forward output).
    static func unary(_ f: UnaryFunction, _ x: Tensor, _ y: Tensor, _ g: Tensor, _ b: GraphBuilder) -> Tensor? {
        switch f {
        case .neg: return -g
        case .exp: return g * y
        case .log: return g / x
        case .sqrt: return g / (y * 2)
        case .rsqrt: return g * (y.square() * y) * -0.5
        case .tanh: return g * (1 - y.square())
        case .sin: return g * x.cos()
        case .cos: return -(g * x.sin())
        case .silu:
            let s = x.sigmoid()
            return g * (s * (x * (1 - s) + 1))
        case .geluTanh:
            let c: Float = 0.7978845608028654, k: Float = 0.044715
            let t = ((x + x.square() * x * k) * c).tanh()
            let dInner = (x.square() * (3 * k) + 1) * c
            return g * ((t + 1) * 0.5 + x * (1 - t.square()) * dInner * 0.5)
        case .sigmoid: return g * (y * (1 - y))
        case .square: return g * x * 2
        case .abs: return g * x.unary(.sign)
        case .recip: return -(g * y.square())
        case .relu: return g * x.unary(.sign).unary(.relu)
        case .sign: return nil
        }
    }

    /// Sums `g` over the axes that broadcasting added or expanded, giving `shape`.
    static func reduce(_ g: Tensor, to shape: [Int]) -> Tensor {
        guard g.shape != shape else { return g }
        let pad = g.rank - shape.count
        var axes = Array(0..<pad)
        for (i, d) in shape.enumerated() where d == 1 && g.shape[pad + i] != 1 { axes.append(pad + i) }
        let summed = axes.isEmpty ? g : g.sum(axes: axes, keepDims: true)
        return summed.reshape(shape)
    }

    /// Gradients of `op(A)·op(B)`; batch broadcasting reduced back. A rank-2 B shared by a batched,
    /// untransposed A gets its gradient from one GEMM over the folded batch.
    static func matmulPullback(_ a: Tensor, _ c: Tensor, _ g: Tensor, ta: Bool, tb: Bool,
                               needed: [Bool]) -> [Tensor?] {
        var ga: Tensor?, gc: Tensor?
        if needed[0] {
            switch (ta, tb) {
            case (false, false): ga = g.matmul(c, transposeB: true)
            case (false, true): ga = g.matmul(c)
            case (true, false): ga = c.matmul(g, transposeB: true)
            case (true, true): ga = c.matmul(g, transposeA: true, transposeB: true)
            }
            ga = ga.map { reduce($0, to: a.shape) }
        }
        if needed[1] {
            if c.rank == 2 && a.rank > 2 && !ta {
                let k = a.shape.last!, n = g.shape.last!
                let a2 = a.reshape([a.type.elementCount / k, k]), g2 = g.reshape([g.type.elementCount / n, n])
                gc = tb ? g2.matmul(a2, transposeA: true) : a2.matmul(g2, transposeA: true)
            } else {
                switch (ta, tb) {
                case (false, false): gc = a.matmul(g, transposeA: true)
                case (false, true): gc = g.matmul(a, transposeA: true)
                case (true, false): gc = a.matmul(g)
                case (true, true): gc = g.matmul(a, transposeA: true, transposeB: true)
                }
                gc = gc.map { reduce($0, to: c.shape) }
            }
        }
        return [ga, gc]
    }
}
