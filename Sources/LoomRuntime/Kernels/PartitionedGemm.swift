import CLoomKernels
import COpenBLAS

extension KernelLibrary {
    /// Multiply-adds below which a single GEMM runs on one thread: splitting it costs more in
    /// duplicated packing and wake-ups than the second core gives back.
    public static let partitionedGEMMThreshold = 1 << 20

    /// One row-major `C = alpha·op(A)·op(B) + beta·C` (C is [m, n], leading dimension `ldc`) spread
    /// over the team by slabs of C, each slab one single-threaded `cblas_sgemm` followed by
    /// `epilogue` on that slab while it is cache-hot. OpenBLAS itself stays single-threaded (see
    /// `Threading`): Loom's threads are the only ones that touch the cores. Slabs split the rows in
    /// multiples of 16, or the columns in multiples of 64 when C is wider than tall and has at least
    /// 128 columns, so each stays a well-shaped GEMM.
    static func partitionedGEMM(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                                a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                                beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int,
                                epilogue: ((_ row: Int, _ col: Int, _ rows: Int, _ cols: Int) -> Void)? = nil) {
        guard m > 0, n > 0 else { return }
        let opA = transposeA ? CblasTrans : CblasNoTrans, opB = transposeB ? CblasTrans : CblasNoTrans
        func slab(_ r0: Int, _ rows: Int, _ c0: Int, _ cols: Int) {
            let aStart = transposeA ? a + r0 : a + r0 * lda
            let bStart = transposeB ? b + c0 * ldb : b + c0
            cblas_sgemm(CblasRowMajor, opA, opB, Int32(rows), Int32(cols), Int32(k), alpha,
                        aStart, Int32(lda), bStart, Int32(ldb), beta, c + r0 * ldc + c0, Int32(ldc))
            epilogue?(r0, c0, rows, cols)
        }
        let workers = Int(loom_get_num_threads())
        let splitRows = m >= n || n < 128
        guard workers > 1, m * n * k >= partitionedGEMMThreshold, !splitRows || m >= 32 else {
            slab(0, m, 0, n)
            return
        }
        let (length, align) = splitRows ? (m, 16) : (n, 64)
        let units = (length + align - 1) / align
        let pieces = min(workers, units)
        Threading.perEntryParallel(pieces) { _, piece in
            let start = units * piece / pieces * align, end = min(length, units * (piece + 1) / pieces * align)
            guard end > start else { return }
            if splitRows { slab(start, end - start, 0, n) } else { slab(0, m, start, end - start) }
        }
    }
}
