import LoomIR
import LoomRuntime

/// Values every parameter's update must share (one node or one constant for all).
struct SharedScalars {
    var beta1: Float?, beta2: Float?, eps: Float?
    var step: Int?, sqrtBias2: Int?, decay: Int?, emaDecay: Int?, emaKeep: Int?

    mutating func agree<T: Equatable>(_ slot: WritableKeyPath<SharedScalars, T?>, _ value: T, _ what: String) throws {
        if let existing = self[keyPath: slot] {
            guard existing == value else { throw OptimizerMatcher.Refusal(reason: "\(what) differs between parameters") }
        } else {
            self[keyPath: slot] = value
        }
    }
}

/// One parameter's update as matched, before the clip multiply is decided for all parameters.
struct PartialSegment {
    /// Parameter, m, v (and EMA) nodes.
    var state: [Int]
    /// New parameter, m, v (and EMA).
    var roots: [Int]
    /// The gradient as the m and v updates read it.
    var scaledGradient: Int
    /// When that gradient is `mul(raw, c)` with a scalar c read only by this update.
    var clipCandidate: (raw: Int, scalar: Int)?
    /// Private intermediates of the update (roots and the clip multiply excluded).
    var interior: [Int]
}

extension OptimizerMatcher {
    /// Operands of `id` when it is binary `f`; for commutative ops both orders are offered to `accept`.
    private func binary(_ id: Int, _ f: BinaryFunction, _ accept: (Int, Int) -> Bool) -> Bool {
        guard node(id).op == .binary(f) else { return false }
        let (a, b) = (node(id).inputs[0], node(id).inputs[1])
        if accept(a, b) { return true }
        return (f == .add || f == .mul) && accept(b, a)
    }

    /// The operand and scale of `affine(x) scale=s shift=shift`.
    private func affine(_ id: Int, shift: Float) -> (x: Int, scale: Float)? {
        guard case .affine(let scale, let s) = node(id).op, s == shift else { return nil }
        return (node(id).inputs[0], scale)
    }

    /// Matches the update of parameter `key` (see `OptimizerPass`):
    /// m' = add(affine(m, β₁), affine(g, 1 − β₁)), v' = add(affine(v, β₂), affine(square(g), 1 − β₂)),
    /// p' = sub(p or mul(p, decay), div(mul(step, m'), affine(div(sqrt(v'), sqrt_bias2), 1, eps))),
    /// ema' = add(mul(ema, d), mul(p', keep)).
    func matchSegment(_ key: String, parameters: [String: Int], ema: Bool, shared: inout SharedScalars) throws -> PartialSegment {
        func fail(_ what: String) -> Refusal { Refusal(reason: "\(key): \(what)") }
        func output(_ name: String) throws -> Int {
            guard let id = outputNodes[Plan.updatePrefix + name] else { throw fail("no output \(Plan.updatePrefix)\(name)") }
            return id
        }
        let p = try parameter(key, parameters), m = try parameter("optim.m." + key, parameters)
        let v = try parameter("optim.v." + key, parameters)
        let e = ema ? try parameter("ema." + key, parameters) : nil
        let (m1, v1, p1) = (try output("optim.m." + key), try output("optim.v." + key), try output(key))
        let e1 = ema ? try output("ema." + key) : nil
        var interior: [Int] = []

        // m' = β₁·m + (1 − β₁)·g
        var gradient = -1
        var beta1: Float = 0
        guard binary(m1, .add, { a, b in
            guard let (x, s) = affine(a, shift: 0), x == m, let (g, c) = affine(b, shift: 0), c == 1 - s else { return false }
            (gradient, beta1) = (g, s)
            interior += [a, b]
            return true
        }) else { throw fail("the first-moment update is not β₁·m + (1 − β₁)·g") }
        try shared.agree(\.beta1, beta1, "β₁")

        // v' = β₂·v + (1 − β₂)·g²
        var beta2: Float = 0
        guard binary(v1, .add, { a, b in
            guard let (x, s) = affine(a, shift: 0), x == v, let (sq, c) = affine(b, shift: 0), c == 1 - s,
                  node(sq).op == .unary(.square), node(sq).inputs[0] == gradient else { return false }
            beta2 = s
            // Without clipping g² is the norm's square too (CSE); the norm fusion takes it then.
            interior += [a, b] + (uses[sq] == 1 ? [sq] : [])
            return true
        }) else { throw fail("the second-moment update is not β₂·v + (1 − β₂)·g²") }
        try shared.agree(\.beta2, beta2, "β₂")

        // p' = p·decay − step·m' / (√v' / sqrt_bias2 + eps)
        var matched = false
        if node(p1).op == .binary(.sub) {
            let (decayed, quotient) = (node(p1).inputs[0], node(p1).inputs[1])
            var decay: Int?
            if decayed != p {
                guard binary(decayed, .mul, { a, b in a == p && isScalar(b) ? { decay = b; return true }() : false }) else {
                    throw fail("the decayed parameter is not p·decay")
                }
                interior.append(decayed)
            }
            if node(quotient).op == .binary(.div) {
                let (numerator, denominator) = (node(quotient).inputs[0], node(quotient).inputs[1])
                var step = -1
                let numeratorOK = binary(numerator, .mul) { a, b in isScalar(a) && b == m1 ? { step = a; return true }() : false }
                if numeratorOK, let (t, one) = affine(denominator, shift: node(denominator).op.affineShift ?? .nan), one == 1,
                   node(t).op == .binary(.div), isScalar(node(t).inputs[1]),
                   node(node(t).inputs[0]).op == .unary(.sqrt), node(node(t).inputs[0]).inputs[0] == v1 {
                    try shared.agree(\.eps, node(denominator).op.affineShift!, "eps")
                    try shared.agree(\.step, step, "the step size")
                    try shared.agree(\.sqrtBias2, node(t).inputs[1], "√(1 − β₂ᵗ)")
                    if let decay { try shared.agree(\.decay, decay, "the weight-decay factor") }
                    else if shared.decay != nil { throw fail("weight decay applies to some parameters only") }
                    interior += [quotient, numerator, denominator, t, node(t).inputs[0]]
                    matched = true
                }
            }
        }
        guard matched else { throw fail("the parameter update is not p − step·m′ / (√v′ / √(1 − β₂ᵗ) + eps)") }

        var state = [p, m, v]
        var roots = [p1, m1, v1]
        if let e, let e1 {
            // ema' = ema·d + p'·(1 − d)
            var found = false
            _ = binary(e1, .add) { a, b in
                var d = -1, keep = -1
                guard binary(a, .mul, { x, y in x == e && isScalar(y) ? { d = y; return true }() : false }),
                      binary(b, .mul, { x, y in x == p1 && isScalar(y) ? { keep = y; return true }() : false }) else { return false }
                guard (try? shared.agree(\.emaDecay, d, "the EMA decay")) != nil,
                      (try? shared.agree(\.emaKeep, keep, "1 − EMA decay")) != nil else { return false }
                interior += [a, b]
                found = true
                return true
            }
            guard found else { throw fail("the EMA update is not ema·d + p′·(1 − d) with the scalars of the other parameters") }
            state.append(e)
            roots.append(e1)
        }
        var clip: (raw: Int, scalar: Int)?
        if node(gradient).op == .binary(.mul), uses[gradient] == 2, !outputIDs.contains(gradient),
           isScalar(node(gradient).inputs[1]), !isScalar(node(gradient).inputs[0]) {
            clip = (node(gradient).inputs[0], node(gradient).inputs[1])
        }
        return PartialSegment(state: state, roots: roots, scaledGradient: gradient, clipCandidate: clip, interior: interior)
    }
}

private extension Op {
    var affineShift: Float? {
        if case .affine(_, let shift) = self { return shift }
        return nil
    }
}
