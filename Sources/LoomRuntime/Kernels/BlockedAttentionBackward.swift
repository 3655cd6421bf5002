import CLoomKernels

extension KernelLibrary {
    /// `token_attention_backward` for long token counts (T² above `onlineSoftmaxScores`): per
    /// (batch, head) on one thread, keys in blocks of 256, so the scratch is two [T, 256] blocks and
    /// three [T] vectors whatever T is (the short path holds two [T, T] blocks). Three passes over
    /// the key blocks, each recomputing the block's scores S = q·kᵀ·scale:
    /// 1. the row max and sum of the whole row (online softmax);
    /// 2. Dᵢ = Σⱼ Pᵢⱼ·dPᵢⱼ with P = exp(S − max)/sum and dP = dy·vᵀ;
    /// 3. dv = Pᵀ·dy and dk = dSᵀ·q·scale for the block's keys (complete, since every query is in the
    ///    block), dq += dS·k·scale, with dS = P ⊙ (dP − D).
    /// The forward saves nothing but qkv; saving its log-sum-exp would spare pass 1.
    static func blockedTokenAttentionBackward(qkv: TensorRef, dy: TensorRef, dqkv: TensorRef, heads: Int, scale: Float) {
        let (batch, t, width) = (qkv.shape[0], qkv.shape[1], qkv.shape[2] / 3)
        let d = width / heads
        let count = batch * heads
        guard count > 0, t > 0 else { return }
        let block = onlineSoftmaxKeyBlock
        let workers = max(1, min(Int(loom_get_num_threads()), count))
        let perWorker = 2 * t * block + 4 * t          // p, dp [T, block]; max, sum [T]; D [T] in double
        let scratch = ScratchPool.attention.buffer(floats: perWorker * workers)
        let (src, grad, out) = (qkv.floats, dy.floats, dqkv.floats)
        let (ld, ldy) = (3 * width, width)
        Threading.perEntryParallel(count) { worker, index in
            let (b, h) = (index / heads, index % heads)
            let p = scratch + worker * perWorker, dp = p + t * block
            let rowMax = dp + t * block, rowSum = rowMax + t
            let rowDot = UnsafeMutableRawPointer(rowSum + t).bindMemory(to: Double.self, capacity: t)
            let q = src + b * t * 3 * width + h * d, k = q + width, v = q + 2 * width
            let dq = out + b * t * 3 * width + h * d, dk = dq + width, dv = dq + 2 * width
            let g = grad + b * t * width + h * d
            /// Scores of keys [start, start + n) into p.
            func scores(_ start: Int, _ n: Int) {
                gemm(worker: worker, transposeA: false, transposeB: true, m: t, n: n, k: d, alpha: scale,
                     a: q, lda: ld, b: k + start * ld, ldb: ld, c: p, ldc: n)
            }
            /// dP of keys [start, start + n) into dp.
            func probabilityGradient(_ start: Int, _ n: Int) {
                gemm(worker: worker, transposeA: false, transposeB: true, m: t, n: n, k: d, alpha: 1,
                     a: g, lda: ldy, b: v + start * ld, ldb: ld, c: dp, ldc: n)
            }
            let blocks = stride(from: 0, to: t, by: block).map { ($0, min(block, t - $0)) }
            for (start, n) in blocks {
                scores(start, n)
                loom_online_softmax_block(p, Int64(t), Int64(n), rowMax, rowSum, nil, 0, 0, start == 0 ? 1 : 0)
            }
            rowDot.initialize(repeating: 0, count: t)
            for (start, n) in blocks {
                scores(start, n)
                loom_softmax_apply_stats(p, Int64(t), Int64(n), rowMax, rowSum)
                probabilityGradient(start, n)
                loom_rows_dot_accumulate(p, dp, Int64(t), Int64(n), rowDot)
            }
            for (start, n) in blocks {
                scores(start, n)
                loom_softmax_apply_stats(p, Int64(t), Int64(n), rowMax, rowSum)
                gemm(worker: worker, transposeA: true, transposeB: false, m: n, n: d, k: t, alpha: 1,
                     a: p, lda: n, b: g, ldb: ldy, c: dv + start * ld, ldc: ld)
                probabilityGradient(start, n)
                loom_softmax_backward_block(p, dp, Int64(t), Int64(n), rowDot, scale)   // dp ← dS·scale
                gemm(worker: worker, transposeA: false, transposeB: false, m: t, n: d, k: n, alpha: 1,
                     a: dp, lda: n, b: k + start * ld, ldb: ld, accumulate: start != 0, c: dq, ldc: ld)
                gemm(worker: worker, transposeA: true, transposeB: false, m: n, n: d, k: t, alpha: 1,
                     a: dp, lda: n, b: q, ldb: ld, c: dk + start * ld, ldc: ld)
            }
        }
    }
}
