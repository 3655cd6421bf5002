import CLoomKernels
import LoomIR

extension KernelLibrary {
    /// Multiply-adds below which a single GEMM runs on one thread: splitting it costs more in
    /// duplicated packing and wake-ups than the second core gives back.
    public static let partitionedGEMMThreshold = 1 << 20

    /// One row-major `C = alpha·op(A)·op(B) (+ C when accumulating) (+ bias)` (C is [m, n], leading dimension `ldc`) spread
    /// over the team by slabs of C, each slab one single-threaded `loom_gemm` (the implementation chosen
    /// for this CPU, `KernelSelection`: Loom's own packed AVX2 GEMM or oneDNN, in the launch's precision) followed by `epilogue` on that slab while
    /// it is cache-hot. `partition` (the plan's record, else `LaunchPartition.gemm`) says whether
    /// slabs split the rows in multiples of 16, or the columns in multiples of 96 (whole panels of
    /// the packed B), or the GEMM runs on one thread. `packedB` is op(B) already packed by `loom_sgemm_pack_b` (weights
    /// packed once per plan, see `PackedWeights`), used when the own kernel runs the launch;
    /// `bf16B` is B [n, k] as bf16 (the same, for bf16 launches).
    /// Every element is computed the same way in any slab, so the result does not depend on the
    /// team size.
    package static func partitionedGEMM(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                                a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                                accumulate: Bool = false, c: UnsafeMutablePointer<Float>, ldc: Int, bias: UnsafePointer<Float>? = nil,
                                packedB: UnsafePointer<Float>? = nil, bf16B: UnsafePointer<UInt16>? = nil,
                                partition: LaunchPartition? = nil,
                                epilogue: ((_ row: Int, _ col: Int, _ rows: Int, _ cols: Int) -> Void)? = nil) {
        guard m > 0, n > 0 else { return }
        let panel = Int(loom_sgemm_panel_width())
        func slab(_ worker: Int, _ r0: Int, _ rows: Int, _ c0: Int, _ cols: Int) {
            let aStart = transposeA ? a + r0 : a + r0 * lda
            let (out, slabBias) = (c + r0 * ldc + c0, bias.map { $0 + c0 })
            if let bf16B, transposeB, !transposeA, alpha == 1, !accumulate,
               loom_gemm_get_precision() == LOOM_PRECISION_BF16 {
                let scratch = ScratchPool.gemm.buffer(slot: worker,
                                                      floats: Int(loom_gemm_scratch_floats(Int64(rows), Int64(cols), Int64(k))))
                loom_gemm_bf16_weights(Int64(rows), Int64(cols), Int64(k), aStart, Int64(lda), bf16B + c0 * k, out,
                                       Int64(ldc), slabBias, scratch)
            } else if let packedB, loom_gemm_uses_own_packing() != 0 {
                // Slabs start on panel boundaries (columns split in multiples of 96).
                let scratch = ScratchPool.gemm.buffer(slot: worker,
                                                      floats: Int(loom_sgemm_scratch_floats(Int64(rows), Int64(cols), Int64(k))))
                loom_sgemm_prepacked(transposeA ? 1 : 0, Int64(rows), Int64(cols), Int64(k), alpha, aStart, Int64(lda),
                                     packedB + c0 / panel * panel * k, accumulate ? 1 : 0, out, Int64(ldc), slabBias, scratch)
            } else {
                gemm(worker: worker, transposeA: transposeA, transposeB: transposeB, m: rows, n: cols, k: k, alpha: alpha,
                     a: aStart, lda: lda, b: transposeB ? b + c0 * ldb : b + c0, ldb: ldb, accumulate: accumulate,
                     c: out, ldc: ldc, bias: slabBias)
            }
            epilogue?(r0, c0, rows, cols)
        }
        let workers = Int(loom_get_num_threads())
        let chosen = partition ?? LaunchPartition.gemm(m: m, n: n, k: k)
        guard workers > 1, chosen == .rows || chosen == .columns else {
            slab(0, 0, m, 0, n)
            return
        }
        let splitRows = chosen == .rows
        let (length, align) = splitRows ? (m, 16) : (n, 96)
        let units = (length + align - 1) / align
        let pieces = min(workers, units)
        Threading.perEntryParallel(pieces) { worker, piece in
            let start = units * piece / pieces * align, end = min(length, units * (piece + 1) / pieces * align)
            guard end > start else { return }
            if splitRows { slab(worker, start, end - start, 0, n) } else { slab(worker, 0, m, start, end - start) }
        }
    }

    /// Single-threaded `loom_gemm` (the implementation and precision chosen for this CPU and launch,
    /// `KernelSelection`) with the scratch of `worker`, for callers that already own a thread.
    static func gemm(worker: Int, transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                     a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int, accumulate: Bool = false,
                     c: UnsafeMutablePointer<Float>, ldc: Int, bias: UnsafePointer<Float>? = nil) {
        guard m > 0, n > 0 else { return }
        let scratch = ScratchPool.gemm.buffer(slot: worker, floats: Int(loom_gemm_scratch_floats(Int64(m), Int64(n), Int64(k))))
        loom_gemm(transposeA ? 1 : 0, transposeB ? 1 : 0, Int64(m), Int64(n), Int64(k), alpha, a, Int64(lda), b, Int64(ldb),
                   accumulate ? 1 : 0, c, Int64(ldc), bias, scratch)
    }
}

extension KernelLibrary {
    /// One GEMM shape run outside any plan, on the implementation and precision a launch would use
    /// (benchmarks: the GEMM-only floor of a step).
    public struct StandaloneGEMM {
        public let transposeA: Bool, transposeB: Bool
        public let m: Int, n: Int, k: Int
        public let precision: PrecisionPolicy

        public init(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, precision: PrecisionPolicy) {
            (self.transposeA, self.transposeB, self.m, self.n, self.k, self.precision) = (transposeA, transposeB, m, n, k, precision)
        }

        /// C [m, n] = op(A)·op(B): split over the team like a step's GEMM, or, with `worker`, on that
        /// worker's thread alone.
        public func run(a: UnsafePointer<Float>, b: UnsafePointer<Float>, c: UnsafeMutablePointer<Float>, worker: Int? = nil) {
            loom_gemm_set_precision(precision == .bf16 ? LOOM_PRECISION_BF16 : LOOM_PRECISION_F32)
            defer { if worker == nil { loom_gemm_set_precision(LOOM_PRECISION_F32) } }
            let lda = transposeA ? m : k, ldb = transposeB ? k : n
            if let worker {
                gemm(worker: worker, transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: 1,
                     a: a, lda: lda, b: b, ldb: ldb, c: c, ldc: n)
            } else {
                partitionedGEMM(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: 1,
                                a: a, lda: lda, b: b, ldb: ldb, c: c, ldc: n)
            }
        }
    }
}
