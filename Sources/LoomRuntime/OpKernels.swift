import CLoomKernels
import COpenBLAS
import LoomIR

/// Evaluates one op on host tensors (the reference lowering of every op in the op set).
enum OpKernels {
    static func evaluate(_ op: Op, _ x: [HostTensor], type: TensorType) throws -> HostTensor {
        switch op {
        case .input, .parameter:
            preconditionFailure("leaves are bound by the executor")
        case .constant(let value):
            return HostTensor(shape: type.shape, floats: [Float](repeating: value, count: type.elementCount))
        case .iota(let axis):
            return iota(type.shape, axis: axis)
        case .unary(let f):
            return map(x[0]) { loom_unary(Int32(unaryCode(f).rawValue), $0, $1, $2) }
        case .affine(let scale, let shift):
            return map(x[0]) { loom_affine($0, $1, $2, scale, shift) }
        case .binary(let f):
            return binary(f, x[0], x[1], outShape: type.shape)
        case .matmul(let ta, let tb):
            return matmul(x[0], x[1], transposeA: ta, transposeB: tb, outShape: type.shape)
        case .reduce(let f, let axes, _):
            return reduce(f, x[0], axes: axes, outShape: type.shape)
        case .softmax:
            return rows(x[0]) { loom_softmax_rows($0, $1, $2, $3) }
        case .layerNorm(let eps):
            return rows(x[0]) { loom_layernorm_rows($0, $1, $2, $3, eps) }
        case .rmsNorm(let eps):
            return rows(x[0]) { loom_rmsnorm_rows($0, $1, $2, $3, eps) }
        case .reshape, .stopGradient:
            var y = x[0]
            y.shape = type.shape
            return y
        case .permute(let perm):
            return Layout.permute(x[0], perm: perm)
        case .slice(let axis, let start, let end):
            return Layout.slice(x[0], axis: axis, start: start, end: end)
        case .concat(let axis):
            return Layout.concat(x, axis: axis, outShape: type.shape)
        case .broadcast(let shape):
            return Layout.broadcast(x[0], to: shape)
        case .gather:
            return try gather(table: x[0], indices: x[1], outShape: type.shape)
        case .scatterAdd(let rows):
            return try scatterAdd(x[0], indices: x[1], rows: rows)
        case .patchify(let p):
            return Layout.patchify(x[0], patch: p)
        case .unpatchify(let p, let gh, let gw):
            return Layout.unpatchify(x[0], patch: p, gridH: gh, gridW: gw)
        case .rotatePairs:
            return map(x[0]) { loom_rotate_pairs($0, $1, $2) }
        case .cast(let dtype):
            return try cast(x[0], to: dtype)
        }
    }

    static func unaryCode(_ f: UnaryFunction) -> loom_unary_op {
        switch f {
        case .neg: return LOOM_U_NEG
        case .exp: return LOOM_U_EXP
        case .log: return LOOM_U_LOG
        case .sqrt: return LOOM_U_SQRT
        case .rsqrt: return LOOM_U_RSQRT
        case .tanh: return LOOM_U_TANH
        case .sin: return LOOM_U_SIN
        case .cos: return LOOM_U_COS
        case .silu: return LOOM_U_SILU
        case .geluTanh: return LOOM_U_GELU_TANH
        case .sigmoid: return LOOM_U_SIGMOID
        case .square: return LOOM_U_SQUARE
        case .abs: return LOOM_U_ABS
        case .recip: return LOOM_U_RECIP
        case .relu: return LOOM_U_RELU
        case .sign: return LOOM_U_SIGN
        }
    }

    static func binaryCode(_ f: BinaryFunction) -> loom_binary_op {
        switch f {
        case .add: return LOOM_B_ADD
        case .sub: return LOOM_B_SUB
        case .mul: return LOOM_B_MUL
        case .div: return LOOM_B_DIV
        case .max: return LOOM_B_MAX
        case .min: return LOOM_B_MIN
        }
    }

    /// Elementwise map through a kernel taking (x, y, n).
    static func map(_ x: HostTensor,
                    _ kernel: (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int64) -> Void) -> HostTensor {
        var out = [Float](repeating: 0, count: x.floats.count)
        x.floats.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                if !dst.isEmpty { kernel(src.baseAddress!, dst.baseAddress!, Int64(dst.count)) }
            }
        }
        return HostTensor(shape: x.shape, floats: out)
    }

    /// Row-wise kernel over the last axis taking (x, y, rows, cols).
    static func rows(_ x: HostTensor,
                     _ kernel: (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int64, Int64) -> Void) -> HostTensor {
        let cols = x.shape.last ?? 1
        return map(x) { src, dst, n in kernel(src, dst, cols == 0 ? 0 : n / Int64(cols), Int64(cols)) }
    }

    /// Element strides of `shape` read as broadcast to `outShape` (0 on broadcast axes).
    static func broadcastStrides(_ shape: [Int], to outShape: [Int]) -> [Int64] {
        let strides = rowMajorStrides(shape)
        let pad = outShape.count - shape.count
        return outShape.indices.map { i in
            guard i >= pad else { return 0 }
            return shape[i - pad] == 1 && outShape[i] != 1 ? 0 : Int64(strides[i - pad])
        }
    }

    static func binary(_ f: BinaryFunction, _ a: HostTensor, _ b: HostTensor, outShape: [Int]) -> HostTensor {
        var out = [Float](repeating: 0, count: outShape.reduce(1, *))
        let shape = outShape.map(Int64.init)
        let sa = broadcastStrides(a.shape, to: outShape), sb = broadcastStrides(b.shape, to: outShape)
        a.floats.withUnsafeBufferPointer { pa in
            b.floats.withUnsafeBufferPointer { pb in
                out.withUnsafeMutableBufferPointer { py in
                    guard !py.isEmpty else { return }
                    loom_binary(Int32(binaryCode(f).rawValue), Int32(shape.count), shape, pa.baseAddress, sa,
                                pb.baseAddress, sb, py.baseAddress)
                }
            }
        }
        return HostTensor(shape: outShape, floats: out)
    }

    static func reduce(_ f: ReduceFunction, _ x: HostTensor, axes: [Int], outShape: [Int]) -> HostTensor {
        let code: loom_reduce_op = f == .sum ? LOOM_R_SUM : f == .mean ? LOOM_R_MEAN : LOOM_R_MAX
        var out = [Float](repeating: 0, count: outShape.reduce(1, *))
        let shape = x.shape.map(Int64.init)
        let mask = x.shape.indices.map { Int32(axes.contains($0) ? 1 : 0) }
        x.floats.withUnsafeBufferPointer { px in
            out.withUnsafeMutableBufferPointer { py in
                guard !py.isEmpty else { return }
                loom_reduce(Int32(code.rawValue), Int32(shape.count), shape, mask, px.baseAddress, py.baseAddress)
            }
        }
        return HostTensor(shape: outShape, floats: out)
    }

    static func gather(table: HostTensor, indices: HostTensor, outShape: [Int]) throws -> HostTensor {
        let (rows, cols) = (table.shape[0], table.shape[1])
        var out = [Float](repeating: 0, count: outShape.reduce(1, *))
        let bad = table.floats.withUnsafeBufferPointer { pt in
            indices.ints.withUnsafeBufferPointer { pi in
                out.withUnsafeMutableBufferPointer { py in
                    loom_gather_rows(pt.baseAddress, Int64(rows), Int64(cols), pi.baseAddress,
                                     Int64(pi.count), py.baseAddress)
                }
            }
        }
        if bad >= 0 {
            throw RuntimeError("index \(indices.ints[Int(bad)]) at position \(bad) is outside the table's \(rows) rows")
        }
        return HostTensor(shape: outShape, floats: out)
    }

    /// y[idx[i], :] += updates[i, :], serially in index order (deterministic).
    static func scatterAdd(_ updates: HostTensor, indices: HostTensor, rows: Int) throws -> HostTensor {
        let cols = updates.shape.last!
        var out = [Float](repeating: 0, count: rows * cols)
        for (i, row) in indices.ints.enumerated() where row < 0 || row >= Int64(rows) {
            throw RuntimeError("index \(row) at position \(i) is outside the table's \(rows) rows")
        }
        updates.floats.withUnsafeBufferPointer { pu in
            out.withUnsafeMutableBufferPointer { py in
                for (i, row) in indices.ints.enumerated() {
                    let dst = py.baseAddress! + Int(row) * cols, src = pu.baseAddress! + i * cols
                    for j in 0..<cols { dst[j] += src[j] }
                }
            }
        }
        return HostTensor(shape: [rows, cols], floats: out)
    }

    static func iota(_ shape: [Int], axis: Int) -> HostTensor {
        let strides = rowMajorStrides(shape)
        let count = shape.reduce(1, *)
        let (stride, size) = (strides.isEmpty ? 1 : strides[axis], shape.isEmpty ? 1 : shape[axis])
        let values = (0..<count).map { Float(($0 / stride) % size) }
        return HostTensor(shape: shape, floats: values)
    }

    static func cast(_ x: HostTensor, to dtype: DType) throws -> HostTensor {
        switch (x.dtype.isFloat, dtype.isFloat) {
        case (true, true): return x
        case (true, false):
            var ints: [Int64] = []
            ints.reserveCapacity(x.floats.count)
            for (i, v) in x.floats.enumerated() {
                guard let n = Int64(exactly: v.rounded(.towardZero)) else {
                    throw RuntimeError("cannot cast \(v) at position \(i) to \(dtype.rawValue)")
                }
                ints.append(n)
            }
            return HostTensor(shape: x.shape, ints: ints, dtype: dtype)
        case (false, true): return HostTensor(shape: x.shape, floats: x.ints.map { Float($0) })
        case (false, false): return HostTensor(shape: x.shape, ints: x.ints, dtype: dtype)
        }
    }
}
