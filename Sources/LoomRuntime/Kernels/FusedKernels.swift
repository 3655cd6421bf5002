import Foundation
import CLoomKernels
import COpenBLAS
import LoomIR

extension KernelLibrary {
    static func fused(_ kernel: FusedKernel, _ x: [TensorRef], _ y: TensorRef, partition: LaunchPartition? = nil) {
        switch kernel {
        case .elementwise(let program):
            elementwise(program, x, y)
        case .linear(let activation):
            linear(x[0], x[1], x[2], y, activation: activation, partition: partition)
        case .normModulate(let eps, let rms):
            let (b, t, d) = (x[0].shape[0], x[0].shape[1], x[0].shape[2])
            let weight: UnsafePointer<Float>? = rms ? UnsafePointer(x[1].floats) : nil
            loom_norm_modulate(x[0].floats, weight, x[x.count - 2].floats, x[x.count - 1].floats, y.floats,
                               Int64(b), Int64(t), Int64(d), eps, rms ? 1 : 0)
        case .attention(let scale):
            let (b, h, t, d) = (x[0].shape[0], x[0].shape[1], x[0].shape[2], x[0].shape[3])
            let (s, e) = (x[1].shape[2], x[2].shape[3])
            // Head-major operands: head i of batch entry b is the contiguous [T, d] block b·H + i.
            attentionHeads(AttentionOperands(
                q: x[0].floats, k: x[1].floats, v: x[2].floats, y: y.floats, batch: b, heads: h,
                queries: t, keys: s, depth: d, valueDepth: e,
                qLayout: .init(batch: h * t * d, head: t * d, row: d), kLayout: .init(batch: h * s * d, head: s * d, row: d),
                vLayout: .init(batch: h * s * e, head: s * e, row: e), yLayout: .init(batch: h * t * e, head: t * e, row: e)),
                scale: scale)
        case .normBackward(let eps, let rms):
            let cols = x[0].shape.last ?? 1
            loom_norm_backward_rows(x[0].floats, x[1].floats, y.floats, Int64(y.count / max(cols, 1)), Int64(cols), eps, rms ? 1 : 0)
        case .tokenAttentionBackward(let heads, let scale):
            tokenAttentionBackward(qkv: x[0], dy: x[1], dqkv: y, heads: heads, scale: scale)
        case .sumSquares:
            sumSquares(x, y)
        case .adamw(let update):
            adamw(update, x, y)
        case .allReduce:
            concatenate(x, into: y)
        case .tokenAttention(let heads, let scale):
            let (b, t, width) = (x[0].shape[0], x[0].shape[1], x[0].shape[2] / 3)
            let d = width / heads
            // Token-major: row t of batch entry b holds q | k | v, each H heads of d columns.
            let qkv = x[0].floats
            let packed = AttentionOperands.Layout(batch: t * 3 * width, head: d, row: 3 * width)
            attentionHeads(AttentionOperands(
                q: qkv, k: qkv + width, v: qkv + 2 * width, y: y.floats, batch: b, heads: heads,
                queries: t, keys: t, depth: d, valueDepth: d, qLayout: packed, kLayout: packed, vLayout: packed,
                yLayout: .init(batch: t * width, head: d, row: width)),
                scale: scale)
        }
    }

    /// y = x·Wᵀ + bias, then the activation: one GEMM split into slabs over the team
    /// (`partitionedGEMM`), each slab's epilogue run by its thread while the slab is cache-hot.
    /// Few rows (batch-1 steps) split the columns, so both threads still get work.
    static func linear(_ x: TensorRef, _ w: TensorRef, _ bias: TensorRef, _ y: TensorRef, activation: UnaryFunction?,
                       packedWeight: UnsafePointer<Float>? = nil, bf16Weight: UnsafePointer<UInt16>? = nil,
                       partition: LaunchPartition? = nil) {
        let n = y.shape.last!, k = x.shape.last!
        let rows = y.count / max(n, 1)
        guard rows > 0, n > 0 else { return }
        let act = activation.map { Int32(unaryCode($0).rawValue) } ?? -1
        let (xp, wp, bp, yp) = (x.floats, w.floats, bias.floats, y.floats)
        // Without an activation there is no epilogue (and no closure to allocate).
        let epilogue: ((Int, Int, Int, Int) -> Void)? = act < 0 ? nil : { r0, c0, m, cols in
            loom_bias_activation_tile(yp + r0 * n + c0, Int64(m), Int64(cols), Int64(n), nil, act)
        }
        partitionedGEMM(transposeA: false, transposeB: true, m: rows, n: n, k: k, alpha: 1,
                        a: xp, lda: k, b: wp, ldb: k, c: yp, ldc: n, bias: bp, packedB: packedWeight,
                        bf16B: bf16Weight, partition: partition, epilogue: epilogue)
    }

    /// Encodes the program for `loom_elementwise` and runs it over the broadcast operands.
    static func elementwise(_ program: ElementwiseProgram, _ x: [TensorRef], _ y: TensorRef) {
        ElementwiseLaunch(program, x, y).run()
    }
}
