import COpenBLAS
import Foundation
import LoomCompiler
import LoomData
import LoomIR
import LoomRuntime

// Small dense linear algebra on the host, for evaluation metrics (Fréchet distance, k-NN
// manifolds): LAPACK's symmetric eigensolver and thin BLAS wrappers. Everything here calls into
// OpenBLAS, so it is fast in debug builds too.
//
// OpenBLAS ships LAPACK but no C header for it here (no lapacke.h), so `dsyev_` is
// looked up at run time with `dlsym` in the already-linked libopenblas and called through a
// `@convention(c)` pointer: the Fortran ABI passes everything by reference, and gfortran appends
// one hidden `size_t` length per CHARACTER argument, which we pass (1 each) to be exact.

/// `dsyev_(jobz, uplo, n, a, lda, w, work, lwork, info, len(jobz), len(uplo))`.
typealias DSYEV = @convention(c) (
    UnsafeMutablePointer<CChar>, UnsafeMutablePointer<CChar>, UnsafeMutablePointer<Int32>,
    UnsafeMutablePointer<Double>, UnsafeMutablePointer<Int32>, UnsafeMutablePointer<Double>,
    UnsafeMutablePointer<Double>, UnsafeMutablePointer<Int32>, UnsafeMutablePointer<Int32>, Int, Int) -> Void

enum LAPACKSymbols {
    /// Resolves `name` in the process's global symbol scope (libopenblas is linked into LoomRuntime).
    static func lookup(_ name: String) -> UnsafeMutableRawPointer? {
        // Make sure libopenblas is loaded (it is: LoomRuntime calls cblas_*), then search globally.
        _ = openblas_get_num_threads()
        guard let handle = dlopen(nil, RTLD_NOW) else { return nil }
        if let symbol = dlsym(handle, name) { return symbol }
        for library in ["libopenblas.so.0", "libopenblas.so", "liblapack.so.3"] {
            if let lib = dlopen(library, RTLD_NOW | RTLD_GLOBAL), let symbol = dlsym(lib, name) { return symbol }
        }
        return nil
    }

    static let dsyev: DSYEV? = lookup("dsyev_").map { unsafeBitCast($0, to: DSYEV.self) }
}

/// Eigen-decomposition of real symmetric matrices (LAPACK `dsyev`).
public enum SymmetricEigen {
    /// Eigenvalues (ascending) and eigenvectors of the symmetric `n`×`n` matrix `a` (row-major; only
    /// symmetric input is meaningful — the lower triangle in row-major terms is read). `vectors` is
    /// row-major `n`×`n` with eigenvector j in **column** j, so `A = V·diag(values)·Vᵀ`.
    public static func decompose(_ a: [Double], n: Int) throws -> (values: [Double], vectors: [Double]) {
        guard n >= 0, a.count == n * n else {
            throw RuntimeError("SymmetricEigen: expected \(n)×\(n) = \(n * n) values, got \(a.count)")
        }
        if n == 0 { return ([], []) }
        if let bad = a.firstIndex(where: { !$0.isFinite }) {
            throw RuntimeError("SymmetricEigen: element \(bad) of the matrix is \(a[bad])")
        }
        guard let dsyev = LAPACKSymbols.dsyev else {
            throw RuntimeError("SymmetricEigen: LAPACK routine dsyev_ not found in libopenblas")
        }
        // Column-major storage of a symmetric matrix is its row-major storage transposed: same
        // data. LAPACK overwrites it with the eigenvectors as columns (column-major).
        var matrix = a
        var values = [Double](repeating: 0, count: n)
        var jobz = CChar(UInt8(ascii: "V")), uplo = CChar(UInt8(ascii: "U"))
        var order = Int32(n), lda = Int32(n), info: Int32 = 0
        // Workspace query, then the real call.
        var lwork: Int32 = -1
        var optimal = 0.0
        matrix.withUnsafeMutableBufferPointer { m in
            values.withUnsafeMutableBufferPointer { w in
                dsyev(&jobz, &uplo, &order, m.baseAddress!, &lda, w.baseAddress!, &optimal, &lwork, &info, 1, 1)
            }
        }
        guard info == 0 else { throw RuntimeError("SymmetricEigen: dsyev workspace query failed (info \(info))") }
        lwork = Int32(max(Double(3 * n), optimal.rounded(.up)))
        var work = [Double](repeating: 0, count: Int(lwork))
        matrix.withUnsafeMutableBufferPointer { m in
            values.withUnsafeMutableBufferPointer { w in
                work.withUnsafeMutableBufferPointer { wk in
                    dsyev(&jobz, &uplo, &order, m.baseAddress!, &lda, w.baseAddress!, wk.baseAddress!, &lwork, &info, 1, 1)
                }
            }
        }
        if info < 0 { throw RuntimeError("SymmetricEigen: dsyev argument \(-info) is invalid") }
        if info > 0 { throw RuntimeError("SymmetricEigen: dsyev did not converge (\(info) off-diagonal elements)") }
        // Column-major V → row-major V: transpose.
        var vectors = [Double](repeating: 0, count: n * n)
        matrix.withUnsafeBufferPointer { src in
            vectors.withUnsafeMutableBufferPointer { dst in
                for j in 0..<n {
                    for i in 0..<n { dst[i * n + j] = src[j * n + i] }
                }
            }
        }
        return (values, vectors)
    }

    /// Eigenvalues only (ascending).
    public static func eigenvalues(_ a: [Double], n: Int) throws -> [Double] {
        try decompose(a, n: n).values
    }

    /// `f(A) = V·diag(f(λ))·Vᵀ` for a symmetric matrix (e.g. the PSD square root with
    /// `f = { max($0, 0).squareRoot() }`).
    public static func apply(_ a: [Double], n: Int, _ f: (Double) -> Double) throws -> [Double] {
        let (values, vectors) = try decompose(a, n: n)
        // V·diag(f(λ)) then ·Vᵀ.
        var scaled = vectors
        let fv = values.map(f)
        scaled.withUnsafeMutableBufferPointer { s in
            for i in 0..<n {
                for j in 0..<n { s[i * n + j] *= fv[j] }
            }
        }
        var result = Linalg.matmul(scaled, vectors, m: n, k: n, n: n, transposeB: true)
        Linalg.symmetrize(&result, n: n)
        return result
    }
}

/// Thin wrappers over OpenBLAS (double precision, LAPACK) and Loom's GEMM (single precision) for
/// host-side numerics (row-major throughout).
public enum Linalg {
    /// `C = alpha·op(A)·op(B) + beta·C`, double precision, row-major with leading dimensions.
    public static func dgemm(transposeA: Bool = false, transposeB: Bool = false, m: Int, n: Int, k: Int,
                             alpha: Double = 1, a: UnsafePointer<Double>, lda: Int, b: UnsafePointer<Double>, ldb: Int,
                             beta: Double = 0, c: UnsafeMutablePointer<Double>, ldc: Int) {
        guard m > 0, n > 0 else { return }
        cblas_dgemm(CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// `C = alpha·op(A)·op(B)` (`+ C` with `accumulate`), single precision, row-major with leading
    /// dimensions, on Loom's GEMM spread over the team.
    public static func sgemm(transposeA: Bool = false, transposeB: Bool = false, m: Int, n: Int, k: Int,
                             alpha: Float = 1, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                             accumulate: Bool = false, c: UnsafeMutablePointer<Float>, ldc: Int) {
        guard m > 0, n > 0 else { return }
        KernelLibrary.partitionedGEMM(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha,
                                      a: a, lda: lda, b: b, ldb: ldb, accumulate: accumulate, c: c, ldc: ldc)
    }

    /// `op(A)·op(B)` for dense row-major double matrices: op(A) is m×k, op(B) is k×n.
    public static func matmul(_ a: [Double], _ b: [Double], m: Int, k: Int, n: Int,
                              transposeA: Bool = false, transposeB: Bool = false) -> [Double] {
        precondition(a.count == m * k && b.count == k * n, "Linalg.matmul: operand sizes do not match \(m)×\(k)·\(k)×\(n)")
        var c = [Double](repeating: 0, count: m * n)
        guard m > 0, n > 0, k > 0 else { return c }
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                c.withUnsafeMutableBufferPointer { pc in
                    dgemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k,
                          a: pa.baseAddress!, lda: transposeA ? m : k, b: pb.baseAddress!, ldb: transposeB ? k : n,
                          c: pc.baseAddress!, ldc: n)
                }
            }
        }
        return c
    }

    /// Replaces a square matrix by `(A + Aᵀ)/2` (removes rounding asymmetry).
    public static func symmetrize(_ a: inout [Double], n: Int) {
        a.withUnsafeMutableBufferPointer { p in
            for i in 0..<n {
                for j in (i + 1)..<max(i + 1, n) {
                    let v = 0.5 * (p[i * n + j] + p[j * n + i])
                    p[i * n + j] = v
                    p[j * n + i] = v
                }
            }
        }
    }

    /// Mean (length `dim`) and unbiased covariance (`dim`×`dim`, row-major, divided by count − 1;
    /// zero for a single row) of `count` rows of `dim` floats, accumulated in double.
    public static func meanAndCovariance(_ rows: UnsafePointer<Float>, count: Int, dim: Int)
        -> (mean: [Double], covariance: [Double]) {
        var mean = [Double](repeating: 0, count: dim)
        var covariance = [Double](repeating: 0, count: dim * dim)
        guard count > 0, dim > 0 else { return (mean, covariance) }
        mean.withUnsafeMutableBufferPointer { mu in
            var p = rows
            for _ in 0..<count {
                for j in 0..<dim { mu[j] += Double(p[j]) }
                p += dim
            }
            for j in 0..<dim { mu[j] /= Double(count) }
        }
        guard count > 1 else { return (mean, covariance) }
        // Centre in chunks (bounded memory) and accumulate Xcᵀ·Xc with dsyrk.
        let chunk = 4096
        var centred = [Double](repeating: 0, count: min(chunk, count) * dim)
        covariance.withUnsafeMutableBufferPointer { cov in
            centred.withUnsafeMutableBufferPointer { xc in
                mean.withUnsafeBufferPointer { mu in
                    var start = 0
                    while start < count {
                        let rowsHere = min(chunk, count - start)
                        var src = rows + start * dim
                        var dst = xc.baseAddress!
                        for _ in 0..<rowsHere {
                            for j in 0..<dim { dst[j] = Double(src[j]) - mu[j] }
                            src += dim
                            dst += dim
                        }
                        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, Int32(dim), Int32(rowsHere), 1,
                                    xc.baseAddress!, Int32(dim), 1, cov.baseAddress!, Int32(dim))
                        start += rowsHere
                    }
                }
                let scale = 1 / Double(count - 1)
                for i in 0..<dim {
                    for j in i..<dim {
                        let v = cov[i * dim + j] * scale
                        cov[i * dim + j] = v
                        cov[j * dim + i] = v
                    }
                }
            }
        }
        return (mean, covariance)
    }

    /// Squared Euclidean norm of each of `count` rows of `dim` floats.
    public static func rowSquaredNorms(_ rows: UnsafePointer<Float>, count: Int, dim: Int) -> [Float] {
        var out = [Float](repeating: 0, count: count)
        out.withUnsafeMutableBufferPointer { o in
            for i in 0..<count {
                o[i] = cblas_sdot(Int32(dim), rows + i * dim, 1, rows + i * dim, 1)
            }
        }
        return out
    }

    /// Squared distances between row blocks: `D[i, j] = ‖a_i − b_j‖²` for `m` rows of `a` and `n`
    /// rows of `b` (`dim` floats each, row-major) into `d` (`m`×`n`, leading dimension `ldd`),
    /// from `‖a‖² + ‖b‖² − 2a·b` (one SGEMM), clamped at 0. `aNorms` / `bNorms` are the rows'
    /// squared norms.
    public static func squaredDistances(a: UnsafePointer<Float>, aNorms: UnsafePointer<Float>, m: Int,
                                        b: UnsafePointer<Float>, bNorms: UnsafePointer<Float>, n: Int, dim: Int,
                                        into d: UnsafeMutablePointer<Float>, ldd: Int) {
        guard m > 0, n > 0 else { return }
        sgemm(transposeB: true, m: m, n: n, k: dim, alpha: -2, a: a, lda: dim, b: b, ldb: dim, c: d, ldc: ldd)
        for i in 0..<m {
            let row = d + i * ldd
            let ai = aNorms[i]
            for j in 0..<n {
                let v = row[j] + ai + bNorms[j]
                row[j] = v > 0 ? v : 0
            }
        }
    }
}
