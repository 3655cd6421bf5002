import CLoomKernels
import COpenBLAS
import Foundation
import LoomIR

/// The kernel behind every op of the op set, over raw memory: `launch` reads the operands and writes
/// the result. Both the reference executor (one buffer per value) and compiled plans (arena slots)
/// call it, so a plan and the reference differ only in where values live and which ops are fused.
/// GEMM launches follow `partition` (a plan's record) or, without one, the same rule
/// (`LaunchPartition.of`).
public enum KernelLibrary {
    public static func launch(_ op: Op, _ x: [TensorRef], _ y: TensorRef, partition: LaunchPartition? = nil) throws {
        let n = Int64(y.count)
        switch op {
        case .input, .parameter:
            preconditionFailure("leaves are bound by the executor")
        case .constant(let value):
            loom_fill(y.floats, n, value)
        case .iota(let axis):
            iota(y, axis: axis)
        case .unary(let f):
            loom_unary(Int32(unaryCode(f).rawValue), x[0].floats, y.floats, n)
        case .affine(let scale, let shift):
            loom_affine(x[0].floats, y.floats, n, scale, shift)
        case .binary(let f):
            binary(f, x[0], x[1], y)
        case .matmul(let ta, let tb):
            matmul(x[0], x[1], y, transposeA: ta, transposeB: tb, partition: partition)
        case .reduce(let f, let axes, _):
            reduce(f, x[0], axes: axes, y)
        case .softmax:
            let cols = Int64(y.shape.last ?? 1)
            loom_softmax_rows(x[0].floats, y.floats, cols == 0 ? 0 : n / cols, cols)
        case .layerNorm(let eps):
            let cols = Int64(y.shape.last ?? 1)
            loom_layernorm_rows(x[0].floats, y.floats, cols == 0 ? 0 : n / cols, cols, eps)
        case .rmsNorm(let eps):
            let cols = Int64(y.shape.last ?? 1)
            loom_rmsnorm_rows(x[0].floats, y.floats, cols == 0 ? 0 : n / cols, cols, eps)
        case .reshape, .stopGradient:
            if x[0].base != y.base { y.base.copyMemory(from: x[0].base, byteCount: storageBytes(y.type)) }
        case .permute, .slice, .concat, .broadcast, .patchify, .unpatchify:
            Layout.run(op, x, y)
        case .gather:
            try gather(table: x[0], indices: x[1], y)
        case .scatterAdd(let rows):
            try scatterAdd(x[0], indices: x[1], rows: rows, y)
        case .rotatePairs:
            loom_rotate_pairs(x[0].floats, y.floats, n)
        case .conv2d(let stride, let padding):
            try convolution(x, y, stride: stride, padding: padding)
        case .cast:
            try cast(x[0], y)
        case .fused(let kernel):
            fused(kernel, x, y, partition: partition)
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

    /// Element strides of `shape` read as broadcast to `outShape` (0 on broadcast axes).
    public static func broadcastStrides(_ shape: [Int], to outShape: [Int]) -> [Int64] {
        let strides = rowMajorStrides(shape)
        let pad = outShape.count - shape.count
        return outShape.indices.map { i in
            guard i >= pad else { return 0 }
            return shape[i - pad] == 1 && outShape[i] != 1 ? 0 : Int64(strides[i - pad])
        }
    }

    static func binary(_ f: BinaryFunction, _ a: TensorRef, _ b: TensorRef, _ y: TensorRef) {
        guard y.count > 0 else { return }
        let shape = y.shape.map(Int64.init)
        let sa = broadcastStrides(a.shape, to: y.shape), sb = broadcastStrides(b.shape, to: y.shape)
        loom_binary(Int32(binaryCode(f).rawValue), Int32(shape.count), shape, a.floats, sa, b.floats, sb, y.floats)
    }

    static func reduce(_ f: ReduceFunction, _ x: TensorRef, axes: [Int], _ y: TensorRef) {
        guard y.count > 0 else { return }
        let code: loom_reduce_op = f == .sum ? LOOM_R_SUM : f == .mean ? LOOM_R_MEAN : LOOM_R_MAX
        let shape = x.shape.map(Int64.init)
        let mask = x.shape.indices.map { Int32(axes.contains($0) ? 1 : 0) }
        loom_reduce(Int32(code.rawValue), Int32(shape.count), shape, mask, x.floats, y.floats)
    }

    static func gather(table: TensorRef, indices: TensorRef, _ y: TensorRef) throws {
        let (rows, cols) = (table.shape[0], table.shape[1])
        let bad = loom_gather_rows(table.floats, Int64(rows), Int64(cols), indices.ints, Int64(indices.count), y.floats)
        if bad >= 0 {
            throw RuntimeError("index \(indices.ints[Int(bad)]) at position \(bad) is outside the table's \(rows) rows")
        }
    }

    /// y[idx[i], :] += updates[i, :], serially in index order (deterministic).
    static func scatterAdd(_ updates: TensorRef, indices: TensorRef, rows: Int, _ y: TensorRef) throws {
        let cols = updates.shape.last!
        for i in 0..<indices.count where indices.ints[i] < 0 || indices.ints[i] >= Int64(rows) {
            throw RuntimeError("index \(indices.ints[i]) at position \(i) is outside the table's \(rows) rows")
        }
        loom_fill(y.floats, Int64(y.count), 0)
        for i in 0..<indices.count {
            let dst = y.floats + Int(indices.ints[i]) * cols, src = updates.floats + i * cols
            loom_binary(Int32(LOOM_B_ADD.rawValue), 1, [Int64(cols)], dst, [1], src, [1], dst)
        }
    }

    static func iota(_ y: TensorRef, axis: Int) {
        let strides = rowMajorStrides(y.shape)
        let (stride, size) = (strides.isEmpty ? 1 : strides[axis], y.shape.isEmpty ? 1 : y.shape[axis])
        for i in 0..<y.count { y.floats[i] = Float((i / stride) % size) }
    }

    static func cast(_ x: TensorRef, _ y: TensorRef) throws {
        switch (x.type.dtype.isFloat, y.type.dtype.isFloat) {
        case (true, true):
            if x.base != y.base { y.floats.update(from: x.floats, count: y.count) }
        case (true, false):
            for i in 0..<x.count {
                guard let n = Int64(exactly: x.floats[i].rounded(.towardZero)) else {
                    throw RuntimeError("cannot cast \(x.floats[i]) at position \(i) to \(y.type.dtype.rawValue)")
                }
                y.ints[i] = n
            }
        case (false, true):
            for i in 0..<x.count { y.floats[i] = Float(x.ints[i]) }
        case (false, false):
            if x.base != y.base { y.ints.update(from: x.ints, count: y.count) }
        }
    }
}
