/// Shape and dtype rules of every op. Errors describe the operands; callers add the node and scope.
public enum TypeInference {
    /// NumPy broadcasting of two shapes, or nil when they are incompatible.
    public static func broadcastShapes(_ a: [Int], _ b: [Int]) -> [Int]? {
        let rank = max(a.count, b.count)
        var out = [Int](repeating: 1, count: rank)
        for i in 0..<rank {
            let da = i < rank - a.count ? 1 : a[i - (rank - a.count)]
            let db = i < rank - b.count ? 1 : b[i - (rank - b.count)]
            if da == db || db == 1 { out[i] = da } else if da == 1 { out[i] = db } else { return nil }
        }
        return out
    }

    /// Normalises possibly negative axes against `rank`, or nil when one is out of range.
    public static func normalizeAxes(_ axes: [Int], rank: Int) -> [Int]? {
        var out: [Int] = []
        for a in axes {
            let n = a < 0 ? a + rank : a
            guard n >= 0, n < rank, !out.contains(n) else { return nil }
            out.append(n)
        }
        return out.sorted()
    }

    /// Result type of `op` applied to operands of `inputs`. Leaf ops return `declared`. Every type
    /// involved must lie within `SizeLimits` (an error, never an overflow).
    public static func infer(_ op: Op, _ inputs: [TensorType], declared: TensorType?) throws -> TensorType {
        for (index, type) in inputs.enumerated() { try SizeLimits.check(type, "operand \(index)") }
        if let declared { try SizeLimits.check(declared, "declared type") }
        let result = try inferWithinLimits(op, inputs, declared: declared)
        try SizeLimits.check(result, "result")
        return result
    }

    /// `infer` for operands already within the limits; products of their dimensions cannot
    /// overflow, and attribute-derived sizes are checked where they are computed.
    static func inferWithinLimits(_ op: Op, _ inputs: [TensorType], declared: TensorType?) throws -> TensorType {
        func fail(_ why: String) -> IRError { IRError(why) }
        if let arity = op.arity, inputs.count != arity {
            throw fail("expects \(arity) operand(s), got \(inputs.count)")
        }
        if op.arity == nil, inputs.isEmpty { throw fail("expects at least one operand") }
        let x = inputs.first
        switch op {
        case .input, .parameter, .constant, .iota:
            guard let declared else { throw fail("needs a declared type") }
            if case .iota(let axis) = op, axis < 0 || axis >= max(declared.rank, 1) {
                throw fail("iota axis \(axis) out of range for \(declared)")
            }
            if case .parameter = op, declared.dtype != .f32 { throw fail("parameters must be f32, got \(declared)") }
            if case .parameter(_, let initializer, _) = op { try checkInitializer(initializer, declared) }
            if declared.shape.contains(where: { $0 < 0 }) { throw fail("negative dimension in \(declared)") }
            return declared
        case .unary, .affine, .softmax, .layerNorm, .rmsNorm, .stopGradient:
            let x = x!
            try requireFloat(x, "operand")
            if case .softmax = op, x.rank == 0 { throw fail("needs rank >= 1, got \(x)") }
            if case .layerNorm = op, x.rank == 0 { throw fail("needs rank >= 1, got \(x)") }
            if case .rmsNorm = op, x.rank == 0 { throw fail("needs rank >= 1, got \(x)") }
            return x
        case .rotatePairs:
            let x = x!
            try requireFloat(x, "operand")
            guard let last = x.shape.last, last % 2 == 0 else {
                throw fail("needs an even last dimension, got \(x)")
            }
            return x
        case .binary:
            let (a, b) = (inputs[0], inputs[1])
            try requireFloat(a, "left operand")
            try requireFloat(b, "right operand")
            guard let shape = broadcastShapes(a.shape, b.shape) else {
                throw fail("cannot broadcast \(describeShape(a.shape)) with \(describeShape(b.shape))")
            }
            return TensorType(.f32, shape)
        case .matmul(let ta, let tb):
            let (a, b) = (inputs[0], inputs[1])
            try requireFloat(a, "left operand")
            try requireFloat(b, "right operand")
            guard a.rank >= 2, b.rank >= 2 else {
                throw fail("needs rank >= 2 operands, got \(describeShape(a.shape)) × \(describeShape(b.shape))")
            }
            let m = ta ? a.shape[a.rank - 1] : a.shape[a.rank - 2]
            let ka = ta ? a.shape[a.rank - 2] : a.shape[a.rank - 1]
            let kb = tb ? b.shape[b.rank - 1] : b.shape[b.rank - 2]
            let n = tb ? b.shape[b.rank - 2] : b.shape[b.rank - 1]
            guard ka == kb else {
                throw fail("inner dimensions differ: \(describeShape(a.shape))\(ta ? "ᵀ" : "") × \(describeShape(b.shape))\(tb ? "ᵀ" : "") (\(ka) vs \(kb))")
            }
            guard let batch = broadcastShapes(Array(a.shape.dropLast(2)), Array(b.shape.dropLast(2))) else {
                throw fail("batch dimensions do not broadcast: \(describeShape(a.shape)) × \(describeShape(b.shape))")
            }
            return TensorType(.f32, batch + [m, n])
        case .reduce(_, let axes, let keepDims):
            let x = x!
            try requireFloat(x, "operand")
            guard let norm = normalizeAxes(axes, rank: x.rank), norm == axes else {
                throw fail("reduction axes \(axes) invalid for \(x) (they must be sorted, unique and in range)")
            }
            var shape: [Int] = []
            for (i, d) in x.shape.enumerated() {
                if norm.contains(i) { if keepDims { shape.append(1) } } else { shape.append(d) }
            }
            return TensorType(.f32, shape)
        case .reshape(let shape):
            let x = x!
            guard shape.allSatisfy({ $0 >= 0 }), SizeLimits.elementCount(shape) == x.elementCount else {
                throw fail("cannot reshape \(describeShape(x.shape)) (\(x.elementCount) elements) to \(describeShape(shape))")
            }
            return TensorType(x.dtype, shape)
        case .permute(let perm):
            let x = x!
            guard perm.count == x.rank, perm.sorted() == Array(0..<x.rank) else {
                throw fail("permutation \(perm) invalid for \(describeShape(x.shape))")
            }
            return TensorType(x.dtype, perm.map { x.shape[$0] })
        case .slice(let axis, let start, let end):
            let x = x!
            guard axis >= 0, axis < x.rank, start >= 0, start <= end, end <= x.shape[axis] else {
                throw fail("slice axis \(axis) [\(start)..<\(end)] out of range for \(describeShape(x.shape))")
            }
            var shape = x.shape
            shape[axis] = end - start
            return TensorType(x.dtype, shape)
        case .concat(let axis):
            let first = inputs[0]
            guard axis >= 0, axis < first.rank else {
                throw fail("concat axis \(axis) out of range for \(describeShape(first.shape))")
            }
            var shape = first.shape
            for other in inputs.dropFirst() {
                var a = first.shape, b = other.shape
                guard a.count == b.count, other.dtype == first.dtype else {
                    throw fail("cannot concatenate \(first) with \(other)")
                }
                a[axis] = 0
                b[axis] = 0
                guard a == b else {
                    throw fail("cannot concatenate \(describeShape(first.shape)) with \(describeShape(other.shape)) on axis \(axis)")
                }
                shape[axis] += other.shape[axis]
            }
            return TensorType(first.dtype, shape)
        case .broadcast(let shape):
            let x = x!
            guard broadcastShapes(x.shape, shape) == shape else {
                throw fail("cannot broadcast \(describeShape(x.shape)) to \(describeShape(shape))")
            }
            return TensorType(x.dtype, shape)
        case .gather:
            let (table, index) = (inputs[0], inputs[1])
            try requireFloat(table, "table")
            guard table.rank == 2 else { throw fail("table must be [V, D], got \(describeShape(table.shape))") }
            guard index.dtype != .f32 else { throw fail("indices must be integers, got \(index)") }
            return TensorType(.f32, index.shape + [table.shape[1]])
        case .scatterAdd(let rows):
            let (updates, index) = (inputs[0], inputs[1])
            try requireFloat(updates, "updates")
            guard index.dtype != .f32 else { throw fail("indices must be integers, got \(index)") }
            guard rows > 0, updates.rank == index.rank + 1, Array(updates.shape.dropLast()) == index.shape else {
                throw fail("updates \(describeShape(updates.shape)) do not match indices \(describeShape(index.shape)) plus one feature axis")
            }
            return TensorType(.f32, [rows, updates.shape.last!])
        case .patchify(let p):
            let x = x!
            try requireFloat(x, "operand")
            guard x.rank == 4, p > 0, x.shape[2] % p == 0, x.shape[3] % p == 0 else {
                throw fail("patch \(p) does not tile \(describeShape(x.shape)) (want [N, C, H, W] with H, W multiples of \(p))")
            }
            let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
            return TensorType(.f32, [n, (h / p) * (w / p), c * p * p])
        case .unpatchify(let p, let gh, let gw):
            let x = x!
            try requireFloat(x, "operand")
            guard gh > 0, gw > 0, p > 0, let cells = SizeLimits.elementCount([gh, gw]),
                  let patch = SizeLimits.elementCount([p, p]), SizeLimits.elementCount([gh, p]) != nil,
                  SizeLimits.elementCount([gw, p]) != nil else {
                throw fail("bad unpatchify grid \(gh)×\(gw) with patch \(p)")
            }
            guard x.rank == 3, x.shape[1] == cells, x.shape[2] % patch == 0 else {
                throw fail("cannot unpatchify \(describeShape(x.shape)) with patch \(p) on a \(gh)×\(gw) grid")
            }
            return TensorType(.f32, [x.shape[0], x.shape[2] / (p * p), gh * p, gw * p])
        case .conv2d(let stride, let padding):
            return try inferConvolution(inputs[0], inputs[1], inputs[2], stride: stride, padding: padding)
        case .cast(let dtype):
            return TensorType(dtype, x!.shape)
        case .fused(let kernel):
            return try inferFused(kernel, inputs)
        }
    }

    /// `x [N, C, H, W]`, `w [O, C, kh, kw]`, `bias [O]` → `[N, O, OH, OW]`,
    /// `OH = (H + top + bottom − kh) / stride + 1` (and likewise OW).
    static func inferConvolution(_ x: TensorType, _ w: TensorType, _ bias: TensorType, stride: Int, padding: [Int]) throws
        -> TensorType {
        try requireFloat(x, "input")
        try requireFloat(w, "weight")
        try requireFloat(bias, "bias")
        guard x.rank == 4 else { throw IRError("conv2d input must be [N, C, H, W], got \(describeShape(x.shape))") }
        guard w.rank == 4, w.shape[1] == x.shape[1] else {
            throw IRError("conv2d weight must be [O, \(x.shape[1]), kh, kw] for input \(describeShape(x.shape)), got \(describeShape(w.shape))")
        }
        guard bias.shape == [w.shape[0]] else {
            throw IRError("conv2d bias must be [\(w.shape[0])], got \(describeShape(bias.shape))")
        }
        guard stride > 0, stride <= SizeLimits.maxElements, padding.count == 4,
              padding.allSatisfy({ $0 >= 0 && $0 <= SizeLimits.maxElements }) else {
            throw IRError("conv2d needs stride ≥ 1 and four paddings ≥ 0 (top, left, bottom, right), got stride \(stride), pad \(padding)")
        }
        // Operands are within the limits, so these sums of a few dimensions cannot overflow.
        let paddedH = x.shape[2] + padding[0] + padding[2], paddedW = x.shape[3] + padding[1] + padding[3]
        guard w.shape[2] >= 1, w.shape[3] >= 1, paddedH >= w.shape[2], paddedW >= w.shape[3] else {
            throw IRError("conv2d kernel \(w.shape[2])×\(w.shape[3]) does not fit the padded input \(paddedH)×\(paddedW)")
        }
        let oh = (paddedH - w.shape[2]) / stride + 1, ow = (paddedW - w.shape[3]) / stride + 1
        return TensorType(.f32, [x.shape[0], w.shape[0], oh, ow])
    }

    static func requireFloat(_ t: TensorType, _ what: String) throws {
        guard t.dtype == .f32 else { throw IRError("\(what) must be f32, got \(t)") }
    }

    static func inferFused(_ kernel: FusedKernel, _ inputs: [TensorType]) throws -> TensorType {
        for (i, t) in inputs.enumerated() { try requireFloat(t, "operand \(i)") }
        switch kernel {
        case .elementwise(let program):
            try program.validate()
            guard program.inputCount == inputs.count else {
                throw IRError("program reads \(program.inputCount) operand(s), got \(inputs.count)")
            }
            var shape: [Int] = []
            for (i, t) in inputs.enumerated() {
                try program.windows[i]?.validate(in: t.shape)
                let operand = program.operandShape(i, of: t.shape)
                guard let b = broadcastShapes(shape, operand) else {
                    throw IRError("cannot broadcast \(describeShape(shape)) with \(describeShape(operand))")
                }
                shape = b
            }
            return TensorType(.f32, shape)
        case .linear:
            let (x, w, bias) = (inputs[0], inputs[1], inputs[2])
            guard x.rank >= 1, w.rank == 2, bias.shape == [w.shape[0]], x.shape.last == w.shape[1] else {
                throw IRError("linear needs x [..., K], weight [N, K], bias [N]; got \(x), \(w), \(bias)")
            }
            return TensorType(.f32, Array(x.shape.dropLast()) + [w.shape[0]])
        case .normModulate(_, let rms):
            guard inputs.count == (rms ? 4 : 3) else {
                throw IRError("norm_modulate takes x, \(rms ? "weight, " : "")shift, scale; got \(inputs.count) operands")
            }
            let x = inputs[0]
            guard x.rank == 3 else { throw IRError("x must be [B, T, D], got \(x)") }
            let (b, d) = (x.shape[0], x.shape[2])
            if rms, inputs[1].shape != [d] { throw IRError("weight must be [\(d)], got \(inputs[1])") }
            for t in inputs.suffix(2) where t.shape != [b, d] {
                throw IRError("shift and scale must be [\(b), \(d)], got \(t)")
            }
            return x
        case .attention:
            let (q, k, v) = (inputs[0], inputs[1], inputs[2])
            guard q.rank == 4, k.rank == 4, v.rank == 4, q.shape[0...1] == k.shape[0...1],
                  k.shape[0...2] == v.shape[0...2], q.shape[3] == k.shape[3] else {
                throw IRError("attention needs q [B,H,T,d], k [B,H,S,d], v [B,H,S,e]; got \(q), \(k), \(v)")
            }
            return TensorType(.f32, [q.shape[0], q.shape[1], q.shape[2], v.shape[3]])
        case .tokenAttention(let heads, _):
            let qkv = inputs[0]
            guard qkv.rank == 3, heads > 0, qkv.shape[2] % (3 * heads) == 0 else {
                throw IRError("token_attention needs qkv [B, T, 3·\(heads)·d]; got \(qkv)")
            }
            return TensorType(.f32, [qkv.shape[0], qkv.shape[1], qkv.shape[2] / 3])
        case .normBackward:
            let (x, dy) = (inputs[0], inputs[1])
            guard x.rank >= 1, dy == x else { throw IRError("norm_backward needs x and dy of one shape; got \(x), \(dy)") }
            return x
        case .tokenAttentionBackward(let heads, _):
            let (qkv, dy) = (inputs[0], inputs[1])
            guard qkv.rank == 3, heads > 0, qkv.shape[2] % (3 * heads) == 0,
                  dy.shape == [qkv.shape[0], qkv.shape[1], qkv.shape[2] / 3] else {
                throw IRError("token_attention_backward needs qkv [B, T, 3·\(heads)·d] and dy [B, T, \(heads)·d]; got \(qkv), \(dy)")
            }
            return qkv
        case .sumSquares:
            guard !inputs.isEmpty else { throw IRError("sum_squares needs at least one operand") }
            return TensorType(.f32, [])
        case .adamw(let u):
            return try inferAdamW(u, inputs)
        case .allReduce:
            guard !inputs.isEmpty, inputs.allSatisfy({ $0.dtype == .f32 }) else {
                throw IRError("allreduce needs at least one f32 operand; got \(inputs.map { "\($0)" }.joined(separator: ", "))")
            }
            return TensorType(.f32, [inputs.reduce(0) { $0 + $1.elementCount }])
        }
    }
}

extension TypeInference {
    /// `adamw`: gradients and state segments of matching shapes, rank-0 scalars; the flat state.
    static func inferAdamW(_ u: AdamWUpdate, _ inputs: [TensorType]) throws -> TensorType {
        guard u.segments > 0, inputs.count == u.operandCount else {
            throw IRError("adamw with segments=\(u.segments)\(u.clip ? ", clip" : "")\(u.decay ? ", decay" : "")\(u.ema ? ", ema" : "") takes \(u.operandCount) operands, got \(inputs.count)")
        }
        var total = 0
        for i in 0..<u.segments {
            let g = inputs[i]
            for part in 0..<u.stateParts where inputs[u.stateOperand(part: part, segment: i)].shape != g.shape {
                throw IRError("adamw segment \(i): state part \(part) is \(inputs[u.stateOperand(part: part, segment: i)]), the gradient \(g)")
            }
            total += g.elementCount
        }
        for i in u.firstScalar..<inputs.count where inputs[i].rank != 0 {
            throw IRError("adamw operand \(i) must be a scalar f32[], got \(inputs[i])")
        }
        return TensorType(.f32, [u.stateParts * total])
    }

    /// An initializer must be able to fill `type`: tables need a positive grid whose cells times the
    /// last dimension (a multiple of 4) give the element count; random ones need sane parameters.
    static func checkInitializer(_ initializer: Initializer, _ type: TensorType) throws {
        switch initializer {
        case .zeros, .ones:
            return
        case .normal(let std):
            guard std.isFinite, std >= 0 else { throw IRError("initializer normal(\(std)): std must be finite and ≥ 0") }
        case .xavierUniform(let fanIn, let fanOut):
            guard fanIn > 0, fanOut > 0, SizeLimits.add(fanIn, fanOut) != nil else {
                throw IRError("initializer xavier_uniform(\(fanIn),\(fanOut)): fans must be positive")
            }
        case .sinCos2D(let gh, let gw), .ropeCos(let gh, let gw), .ropeSin(let gh, let gw):
            let last = type.shape.last ?? 0
            guard gh > 0, gw > 0, last > 0, last % 4 == 0, let cells = SizeLimits.elementCount([gh, gw, last]),
                  cells == type.elementCount else {
                throw IRError("initializer grid \(gh)×\(gw) does not fill \(type) (want grid cells × a last dimension that is a multiple of 4)")
            }
        }
    }
}
