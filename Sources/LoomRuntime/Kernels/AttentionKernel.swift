import CLoomKernels

/// Where the heads of an attention operand live: element (b, h, row, col) is at
/// `base + b·batch + h·head + row·row + col` (columns contiguous).
struct AttentionOperands {
    struct Layout {
        var batch: Int
        var head: Int
        var row: Int
    }

    var q, k, v: UnsafeMutablePointer<Float>
    var y: UnsafeMutablePointer<Float>
    var batch, heads, queries, keys, depth, valueDepth: Int
    var qLayout, kLayout, vLayout, yLayout: Layout
}

extension KernelLibrary {
    /// Per (batch, head): scores = q·kᵀ·scale into a [T, S] scratch row block, softmax, then ·v
    /// into y. Heads are spread over the team, one head per thread at a time with the GEMMs
    /// single-threaded inside; each head is computed by exactly one thread, so results do not
    /// depend on the team size. The scratch is kept between calls (no allocation per launch once
    /// the largest attention of a plan has run).
    static func attentionHeads(_ o: AttentionOperands, scale: Float) {
        let count = o.batch * o.heads
        guard count > 0, o.queries > 0, o.keys > 0 else { return }
        if o.queries * o.keys > onlineSoftmaxScores {
            onlineAttentionHeads(o, scale: scale)
            return
        }
        let workers = max(1, min(Int(loom_get_num_threads()), count))
        let scratch = ScratchPool.attention.buffer(floats: o.queries * o.keys * workers)
        let (t, s, d, e) = (o.queries, o.keys, o.depth, o.valueDepth)
        Threading.perEntryParallel(count) { worker, index in
            let (b, h) = (index / o.heads, index % o.heads)
            let scores = scratch + worker * t * s  // [T, S]
            let q = o.q + b * o.qLayout.batch + h * o.qLayout.head
            let k = o.k + b * o.kLayout.batch + h * o.kLayout.head
            let v = o.v + b * o.vLayout.batch + h * o.vLayout.head
            let y = o.y + b * o.yLayout.batch + h * o.yLayout.head
            gemm(worker: worker, transposeA: false, transposeB: true, m: t, n: s, k: d, alpha: scale,
                 a: q, lda: o.qLayout.row, b: k, ldb: o.kLayout.row, c: scores, ldc: s)
            loom_softmax_rows(scores, scores, Int64(t), Int64(s))
            gemm(worker: worker, transposeA: false, transposeB: false, m: t, n: e, k: s, alpha: 1,
                 a: scores, lda: s, b: v, ldb: o.vLayout.row, c: y, ldc: o.yLayout.row)
        }
    }
}

extension KernelLibrary {
    /// Score blocks above this many elements per head ([T, S] beyond ≈ 8 MiB) make attention switch
    /// to the online softmax over key blocks (long token counts: images at patch 1, large latents).
    public static let onlineSoftmaxScores = 1 << 21
    /// Keys per block of the online softmax.
    static let onlineSoftmaxKeyBlock = 256

    /// Flash-style attention forward for long token counts: per head, keys in blocks of 256; each
    /// block's scores [T, 256] are exponentiated against the running row max, the partial output is
    /// rescaled and the block's P·V accumulated into y, and y is divided by the running sums at the
    /// end. Only [T, 256] scores and two [T] vectors of scratch per thread, whatever S is.
    static func onlineAttentionHeads(_ o: AttentionOperands, scale: Float) {
        let count = o.batch * o.heads
        let (t, s, d, e) = (o.queries, o.keys, o.depth, o.valueDepth)
        let block = onlineSoftmaxKeyBlock
        let workers = max(1, min(Int(loom_get_num_threads()), count))
        let perWorker = t * block + 2 * t
        let scratch = ScratchPool.attention.buffer(floats: perWorker * workers)
        Threading.perEntryParallel(count) { worker, index in
            let (b, h) = (index / o.heads, index % o.heads)
            let scores = scratch + worker * perWorker        // [T, block]
            let rowMax = scores + t * block, rowSum = rowMax + t   // [T] each
            let q = o.q + b * o.qLayout.batch + h * o.qLayout.head
            let k = o.k + b * o.kLayout.batch + h * o.kLayout.head
            let v = o.v + b * o.vLayout.batch + h * o.vLayout.head
            let y = o.y + b * o.yLayout.batch + h * o.yLayout.head
            for start in stride(from: 0, to: s, by: block) {
                let n = min(block, s - start)
                gemm(worker: worker, transposeA: false, transposeB: true, m: t, n: n, k: d, alpha: scale,
                     a: q, lda: o.qLayout.row, b: k + start * o.kLayout.row, ldb: o.kLayout.row, c: scores, ldc: n)
                loom_online_softmax_block(scores, Int64(t), Int64(n), rowMax, rowSum, y, Int64(o.yLayout.row),
                                          Int64(e), start == 0 ? 1 : 0)
                gemm(worker: worker, transposeA: false, transposeB: false, m: t, n: e, k: n, alpha: 1,
                     a: scores, lda: n, b: v + start * o.vLayout.row, ldb: o.vLayout.row, accumulate: start != 0,
                     c: y, ldc: o.yLayout.row)
            }
            for row in 0..<t {
                let inverse = 1 / rowSum[row]
                let out = y + row * o.yLayout.row
                for column in 0..<e { out[column] *= inverse }
            }
        }
    }

    /// The gradient of `token_attention` (see `FusedKernel.tokenAttentionBackward`): per (batch,
    /// head) on one thread, the probabilities P and then dP/dS in two [T, T] scratch blocks; every
    /// element of dqkv is written once (dq, dk, dv are disjoint column ranges of each row). Long
    /// token counts take `blockedTokenAttentionBackward` (key blocks, [T, 256] scratch).
    static func tokenAttentionBackward(qkv: TensorRef, dy: TensorRef, dqkv: TensorRef, heads: Int, scale: Float) {
        let (batch, t, width) = (qkv.shape[0], qkv.shape[1], qkv.shape[2] / 3)
        let d = width / heads
        let count = batch * heads
        guard count > 0, t > 0 else { return }
        if t * t > onlineSoftmaxScores {
            blockedTokenAttentionBackward(qkv: qkv, dy: dy, dqkv: dqkv, heads: heads, scale: scale)
            return
        }
        let workers = max(1, min(Int(loom_get_num_threads()), count))
        let scratch = ScratchPool.attention.buffer(floats: 2 * t * t * workers)
        let (src, grad, out) = (qkv.floats, dy.floats, dqkv.floats)
        let (ld, ldy) = (3 * width, width)
        Threading.perEntryParallel(count) { worker, index in
            let (b, h) = (index / heads, index % heads)
            let p = scratch + worker * 2 * t * t, dp = p + t * t          // [T, T] each
            let q = src + b * t * 3 * width + h * d, k = q + width, v = q + 2 * width
            let dq = out + b * t * 3 * width + h * d, dk = dq + width, dv = dq + 2 * width
            let g = grad + b * t * width + h * d                           // rows `width` apart
            gemm(worker: worker, transposeA: false, transposeB: true, m: t, n: t, k: d, alpha: scale,
                 a: q, lda: ld, b: k, ldb: ld, c: p, ldc: t)
            loom_softmax_rows(p, p, Int64(t), Int64(t))
            gemm(worker: worker, transposeA: true, transposeB: false, m: t, n: d, k: t, alpha: 1,
                 a: p, lda: t, b: g, ldb: ldy, c: dv, ldc: ld)
            gemm(worker: worker, transposeA: false, transposeB: true, m: t, n: t, k: d, alpha: 1,
                 a: g, lda: ldy, b: v, ldb: ld, c: dp, ldc: t)
            loom_softmax_backward_rows(p, dp, Int64(t), Int64(t), scale)    // dp ← dS·scale
            gemm(worker: worker, transposeA: false, transposeB: false, m: t, n: d, k: t, alpha: 1,
                 a: dp, lda: t, b: k, ldb: ld, c: dq, ldc: ld)
            gemm(worker: worker, transposeA: true, transposeB: false, m: t, n: d, k: t, alpha: 1,
                 a: dp, lda: t, b: q, ldb: ld, c: dk, ldc: ld)
        }
    }
}
