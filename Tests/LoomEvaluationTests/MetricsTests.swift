import LoomData
@testable import LoomEvaluation
import LoomRuntime
import LoomTestSupport
import XCTest

/// Fréchet distance, eigendecomposition, k-NN precision/recall and conditional accuracy against
/// closed forms and independent computations.
final class MetricsTests: XCTestCase {
    // MARK: helpers

    /// Deterministic normal draws.
    func normals(_ count: Int, seed: UInt64, stream: String) -> [Double] {
        var random = RandomStream(seed: seed, stream: RandomStream.streamID(stream))
        return random.normal(count).map(Double.init)
    }

    /// A random symmetric positive-definite n×n matrix: G·Gᵀ/n + δI.
    func randomSPD(_ n: Int, seed: UInt64, ridge: Double = 0.1) -> [Double] {
        let g = normals(n * n, seed: seed, stream: "spd")
        var a = Linalg.matmul(g, g, m: n, k: n, n: n, transposeB: true)
        for i in 0..<n * n { a[i] /= Double(n) }
        for i in 0..<n { a[i * n + i] += ridge }
        return a
    }

    /// A random orthogonal matrix (eigenvectors of a random SPD matrix).
    func randomOrthogonal(_ n: Int, seed: UInt64) throws -> [Double] {
        try SymmetricEigen.decompose(randomSPD(n, seed: seed), n: n).vectors
    }

    func diag(_ values: [Double]) -> [Double] {
        let n = values.count
        var m = [Double](repeating: 0, count: n * n)
        for i in 0..<n { m[i * n + i] = values[i] }
        return m
    }

    /// Q·diag(values)·Qᵀ.
    func conjugate(_ q: [Double], _ values: [Double]) -> [Double] {
        let n = values.count
        let qd = Linalg.matmul(q, diag(values), m: n, k: n, n: n)
        return Linalg.matmul(qd, q, m: n, k: n, n: n, transposeB: true)
    }

    func matmul(_ a: [Double], _ b: [Double], _ n: Int) -> [Double] { Linalg.matmul(a, b, m: n, k: n, n: n) }

    /// Gauss–Jordan inverse with partial pivoting (independent of LAPACK).
    func inverse(_ a: [Double], _ n: Int) -> [Double] {
        var m = a, inv = diag([Double](repeating: 1, count: n))
        for col in 0..<n {
            var pivot = col
            for r in col..<n where abs(m[r * n + col]) > abs(m[pivot * n + col]) { pivot = r }
            for j in 0..<n {
                m.swapAt(col * n + j, pivot * n + j)
                inv.swapAt(col * n + j, pivot * n + j)
            }
            let p = m[col * n + col]
            for j in 0..<n {
                m[col * n + j] /= p
                inv[col * n + j] /= p
            }
            for r in 0..<n where r != col {
                let f = m[r * n + col]
                if f == 0 { continue }
                for j in 0..<n {
                    m[r * n + j] -= f * m[col * n + j]
                    inv[r * n + j] -= f * inv[col * n + j]
                }
            }
        }
        return inv
    }

    /// Tr((A·B)^{½}) by the Denman–Beavers iteration on the (non-symmetric) product: an
    /// independent route to the trace term.
    func traceSqrtProduct(_ a: [Double], _ b: [Double], _ n: Int) -> Double {
        var y = matmul(a, b, n), z = diag([Double](repeating: 1, count: n))
        for _ in 0..<60 {
            let yInv = inverse(y, n), zInv = inverse(z, n)
            y = zip(y, zInv).map { 0.5 * ($0 + $1) }
            z = zip(z, yInv).map { 0.5 * ($0 + $1) }
        }
        return (0..<n).reduce(0) { $0 + y[$1 * n + $1] }
    }

    func trace(_ a: [Double], _ n: Int) -> Double { (0..<n).reduce(0) { $0 + a[$1 * n + $1] } }

    // MARK: eigendecomposition

    func testEigenDecompositionReconstructsMatrix() throws {
        for n in [1, 2, 5, 17, 64] {
            let a = randomSPD(n, seed: UInt64(n))
            let (values, vectors) = try SymmetricEigen.decompose(a, n: n)
            XCTAssertEqual(values.count, n)
            XCTAssertEqual(values, values.sorted(), "eigenvalues come ascending")
            let rebuilt = conjugate(vectors, values)
            let error = zip(a, rebuilt).map { abs($0 - $1) }.max()!
            XCTAssertLessThan(error, 1e-10, "n = \(n)")
            // Orthonormal eigenvectors: VᵀV = I.
            let gram = Linalg.matmul(vectors, vectors, m: n, k: n, n: n, transposeA: true)
            let identity = diag([Double](repeating: 1, count: n))
            XCTAssertLessThan(zip(gram, identity).map { abs($0 - $1) }.max()!, 1e-10)
            // A·v_j = λ_j·v_j for the first column.
            let av = Linalg.matmul(a, vectors, m: n, k: n, n: n)
            for i in 0..<n { XCTAssertEqual(av[i * n], values[0] * vectors[i * n], accuracy: 1e-10) }
        }
    }

    func testEigenDecompositionKnownSpectrum() throws {
        // [[2, 1], [1, 2]] has eigenvalues 1 and 3.
        let (values, vectors) = try SymmetricEigen.decompose([2, 1, 1, 2], n: 2)
        XCTAssertEqual(values[0], 1, accuracy: 1e-12)
        XCTAssertEqual(values[1], 3, accuracy: 1e-12)
        XCTAssertEqual(abs(vectors[0 * 2 + 1]), 0.5.squareRoot(), accuracy: 1e-12)
        XCTAssertThrowsError(try SymmetricEigen.decompose([1, 2, 3], n: 2))
        XCTAssertThrowsError(try SymmetricEigen.decompose([1, .nan, .nan, 1], n: 2))
        XCTAssertEqual(try SymmetricEigen.decompose([], n: 0).values, [])
    }

    func testMatrixSquareRootSquaresBack() throws {
        let n = 12
        let a = randomSPD(n, seed: 3)
        let root = try SymmetricEigen.apply(a, n: n) { $0.squareRoot() }
        let squared = matmul(root, root, n)
        XCTAssertLessThan(zip(a, squared).map { abs($0 - $1) }.max()!, 1e-10)
    }

    // MARK: Fréchet distance closed forms

    func testIdenticalGaussiansHaveZeroDistance() throws {
        let n = 32
        let cov = randomSPD(n, seed: 7)
        let mean = normals(n, seed: 7, stream: "mean")
        let d = try FrechetDistance.compute(mean1: mean, covariance1: cov, mean2: mean, covariance2: cov)
        XCTAssertEqual(d, 0, accuracy: 1e-9)
    }

    func testMeansDifferingOnly() throws {
        let n = 16
        let cov = randomSPD(n, seed: 11)
        let m1 = normals(n, seed: 1, stream: "m1"), m2 = normals(n, seed: 2, stream: "m2")
        let expected = zip(m1, m2).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }
        let d = try FrechetDistance.compute(mean1: m1, covariance1: cov, mean2: m2, covariance2: cov)
        XCTAssertEqual(d, expected, accuracy: 1e-9 * max(1, expected))
    }

    func testDiagonalCovariances() throws {
        let s1: [Double] = [0.5, 1, 2, 3, 0.01, 4], s2: [Double] = [1, 1, 0.5, 6, 2, 0.25]  // standard deviations
        let m1: [Double] = [0, 1, 2, 3, 4, 5], m2: [Double] = [1, 1, 1, 1, 1, 1]
        let expected = zip(m1, m2).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }
            + zip(s1, s2).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }
        let d = try FrechetDistance.compute(mean1: m1, covariance1: diag(s1.map { $0 * $0 }),
                                            mean2: m2, covariance2: diag(s2.map { $0 * $0 }))
        XCTAssertEqual(d, expected, accuracy: 1e-10)
        // One dimension: (μ₁ − μ₂)² + (σ₁ − σ₂)².
        XCTAssertEqual(try FrechetDistance.compute(mean1: [3], covariance1: [4], mean2: [1], covariance2: [9]), 4 + 1,
                       accuracy: 1e-12)
    }

    func testCommutingCovariancesClosedForm() throws {
        // Σ₁ = Q·diag(a)·Qᵀ, Σ₂ = Q·diag(b)·Qᵀ share eigenvectors: trace term Σ(√a − √b)².
        let n = 10
        let q = try randomOrthogonal(n, seed: 5)
        let a = (0..<n).map { 0.2 + Double($0) }, b = (0..<n).map { 3.0 / (1 + Double($0)) }
        let expected = zip(a, b).reduce(0) { $0 + pow($1.0.squareRoot() - $1.1.squareRoot(), 2) }
        let zero = [Double](repeating: 0, count: n)
        let d = try FrechetDistance.compute(mean1: zero, covariance1: conjugate(q, a), mean2: zero, covariance2: conjugate(q, b))
        XCTAssertEqual(d, expected, accuracy: 1e-9)
        // Scaled covariance: Σ₂ = c²Σ₁ → (1 − c)²·TrΣ₁.
        let s = randomSPD(n, seed: 9)
        let d2 = try FrechetDistance.compute(mean1: zero, covariance1: s, mean2: zero, covariance2: s.map { $0 * 6.25 })
        XCTAssertEqual(d2, pow(1 - 2.5, 2) * trace(s, n), accuracy: 1e-9)
    }

    func testRandomSPDMatchesIndependentMatrixSquareRoot() throws {
        // General non-commuting SPD pair: compare with Tr((Σ₁Σ₂)^{½}) from a Denman–Beavers iteration.
        for (n, seed) in [(3, UInt64(1)), (6, 2), (9, 3)] {
            let s1 = randomSPD(n, seed: seed), s2 = randomSPD(n, seed: seed + 100, ridge: 0.5)
            let m1 = normals(n, seed: seed, stream: "a"), m2 = normals(n, seed: seed, stream: "b")
            let meanTerm = zip(m1, m2).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }
            let expected = meanTerm + trace(s1, n) + trace(s2, n) - 2 * traceSqrtProduct(s1, s2, n)
            let d = try FrechetDistance.compute(mean1: m1, covariance1: s1, mean2: m2, covariance2: s2)
            XCTAssertEqual(d, expected, accuracy: 1e-8 * max(1, expected), "n = \(n)")
            XCTAssertGreaterThan(d, 0)
            // Symmetric in its arguments.
            let swapped = try FrechetDistance.compute(mean1: m2, covariance1: s2, mean2: m1, covariance2: s1)
            XCTAssertEqual(d, swapped, accuracy: 1e-9 * max(1, d))
        }
    }

    func testSingularCovarianceIsHandled() throws {
        // Rank-deficient Σ₁ (PSD, not PD): still finite, equals the diagonal closed form.
        let d = try FrechetDistance.compute(mean1: [0, 0, 0], covariance1: diag([1, 0, 4]),
                                            mean2: [0, 0, 0], covariance2: diag([1, 1, 1]))
        XCTAssertEqual(d, 0 + 1 + 1, accuracy: 1e-10)
    }

    func testEmpiricalStatisticsConverge() throws {
        // Samples of N(μ₁, Σ₁) and N(μ₂, Σ₂) (x = μ + L·z with Σ = L·Lᵀ, L the PSD root):
        // the empirical distance approaches the exact one.
        let n = 4, count = 40_000
        let s1 = randomSPD(n, seed: 21), s2 = randomSPD(n, seed: 22, ridge: 0.3)
        let m1: [Double] = [0, 0.5, -1, 2], m2: [Double] = [0.3, 0, -1, 1]
        let exact = try FrechetDistance.compute(mean1: m1, covariance1: s1, mean2: m2, covariance2: s2)
        func draw(_ mean: [Double], _ cov: [Double], seed: UInt64) throws -> [Float] {
            let root = try SymmetricEigen.apply(cov, n: n) { $0.squareRoot() }
            let z = normals(count * n, seed: seed, stream: "draw")
            let x = Linalg.matmul(z, root, m: count, k: n, n: n)  // root is symmetric
            return (0..<(count * n)).map { Float(x[$0] + mean[$0 % n]) }
        }
        let a = GaussianStats(features: try draw(m1, s1, seed: 1), count: count, dim: n)
        let b = GaussianStats(features: try draw(m2, s2, seed: 2), count: count, dim: n)
        for i in 0..<n {
            XCTAssertEqual(a.mean[i], m1[i], accuracy: 0.05)
            for j in 0..<n { XCTAssertEqual(a.covariance[i * n + j], s1[i * n + j], accuracy: 0.05 * max(1, s1[i * n + i])) }
        }
        let empirical = try FrechetDistance.compute(a, b)
        XCTAssertEqual(empirical, exact, accuracy: 0.03 * exact + 0.01)
        // Two independent samples of the same Gaussian: distance near 0.
        let c = GaussianStats(features: try draw(m1, s1, seed: 3), count: count, dim: n)
        XCTAssertLessThan(try FrechetDistance.compute(a, c), 0.01)
    }

    func testGaussianStatsOfSmallSet() {
        // Rows (1, 2), (3, 6): mean (2, 4); unbiased covariance [[2, 4], [4, 8]].
        let s = GaussianStats(features: [1, 2, 3, 6], count: 2, dim: 2)
        XCTAssertEqual(s.mean, [2, 4])
        XCTAssertEqual(s.covariance, [2, 4, 4, 8])
        XCTAssertEqual(s.trace, 10)
    }

    // MARK: precision / recall

    /// Squared k-NN radii by brute force.
    func bruteRadii(_ x: [Float], _ count: Int, _ dim: Int, _ k: Int) -> [Float] {
        (0..<count).map { i in
            let distances = (0..<count).filter { $0 != i }.map { j -> Float in
                (0..<dim).reduce(Float(0)) { $0 + (x[i * dim + $1] - x[j * dim + $1]) * (x[i * dim + $1] - x[j * dim + $1]) }
            }.sorted()
            return distances[k - 1]
        }
    }

    func testKNNRadiiMatchBruteForce() {
        let dim = 5, count = 300
        var random = RandomStream(seed: 4, stream: 9)
        let x = random.normal(count * dim)
        // Force a duplicate pair: its radius must not count itself but may count the twin (distance 0).
        var y = x
        for j in 0..<dim { y[dim + j] = y[j] }
        for points in [x, y] {
            let fast = ManifoldMetrics.kNNSquaredRadii(points, count: count, dim: dim, k: 3)
            let slow = bruteRadii(points, count, dim, 3)
            for i in 0..<count { XCTAssertEqual(fast[i], slow[i], accuracy: 1e-4 * max(1, slow[i])) }
        }
        XCTAssertEqual(ManifoldMetrics.kNNSquaredRadii([0, 1, 2], count: 3, dim: 1, k: 3), [.infinity, .infinity, .infinity])
    }

    func testKNNRadiiAcrossBlocks() {
        // More rows than one distance block in both directions.
        let dim = 2, count = ManifoldMetrics.blockRows + 300
        var random = RandomStream(seed: 8, stream: 1)
        let x = random.uniform(count * dim)
        let fast = ManifoldMetrics.kNNSquaredRadii(x, count: count, dim: dim, k: 3)
        for i in stride(from: 0, to: count, by: 611) {
            var d: [Float] = []
            for j in 0..<count where j != i {
                let a = x[i * 2] - x[j * 2], b = x[i * 2 + 1] - x[j * 2 + 1]
                d.append(a * a + b * b)
            }
            d.sort()
            XCTAssertEqual(fast[i], d[2], accuracy: 1e-6)
        }
    }

    func testPrecisionRecallOfKnownConfigurations() {
        let dim = 8, count = 1000
        var random = RandomStream(seed: 1, stream: 2)
        let real = random.normal(count * dim)
        let other = random.normal(count * dim)
        // Same distribution: both high.
        let same = ManifoldMetrics.precisionRecall(real: real, realCount: count, generated: other, generatedCount: count, dim: dim)
        XCTAssertGreaterThan(same.precision, 0.6)
        XCTAssertGreaterThan(same.recall, 0.6)
        // Identical sets: every point lies in its own ball.
        let identical = ManifoldMetrics.precisionRecall(real: real, realCount: count, generated: real, generatedCount: count, dim: dim)
        XCTAssertEqual(identical.precision, 1)
        XCTAssertEqual(identical.recall, 1)
        // Far away: both 0.
        let shifted = other.map { $0 + 100 }
        let far = ManifoldMetrics.precisionRecall(real: real, realCount: count, generated: shifted, generatedCount: count, dim: dim)
        XCTAssertEqual(far.precision, 0)
        XCTAssertEqual(far.recall, 0)
        // Mode collapse: generated points all near the real mean → precise, not diverse.
        let collapsed = random.normal(count * dim, std: 0.05)
        let mode = ManifoldMetrics.precisionRecall(real: real, realCount: count, generated: collapsed, generatedCount: count, dim: dim)
        XCTAssertGreaterThan(mode.precision, 0.95)
        XCTAssertLessThan(mode.recall, 0.1)
        // Over-dispersed generator: diverse (high recall), imprecise.
        let wide = random.normal(count * dim, std: 4)
        let spread = ManifoldMetrics.precisionRecall(real: real, realCount: count, generated: wide, generatedCount: count, dim: dim)
        XCTAssertLessThan(spread.precision, 0.2)
        XCTAssertGreaterThan(spread.recall, 0.9)
    }

    func testCoverageAgainstBruteForce() {
        let dim = 3, m = 200, q = 150
        var random = RandomStream(seed: 2, stream: 3)
        let manifold = random.normal(m * dim), queries = random.normal(q * dim, std: 1.5)
        let radii = ManifoldMetrics.kNNSquaredRadii(manifold, count: m, dim: dim, k: 3)
        let fast = ManifoldMetrics.coverageFraction(queries: queries, queryCount: q, manifold: manifold, manifoldCount: m,
                                                    squaredRadii: radii, dim: dim)
        var hits = 0
        for i in 0..<q {
            let inside = (0..<m).contains { j in
                (0..<dim).reduce(Float(0)) { $0 + pow(queries[i * dim + $1] - manifold[j * dim + $1], 2) } <= radii[j]
            }
            if inside { hits += 1 }
        }
        XCTAssertEqual(fast, Double(hits) / Double(q), accuracy: 1.0 / Double(q) + 1e-12)
    }

    // MARK: conditional accuracy

    func testConditionalAccuracy() {
        let logits: [Float] = [0, 5, 1,   // → 1
                               9, 2, 3,   // → 0
                               0, 0, 0.5, // → 2
                               1, 1, 0]   // tie → first (0)
        XCTAssertEqual(ConditionalAccuracy.argmax(logits, classes: 3), [1, 0, 2, 0])
        XCTAssertEqual(ConditionalAccuracy.compute(logits: logits, classes: 3, labels: [1, 0, 1, 0]), 0.75)
        XCTAssertEqual(ConditionalAccuracy.compute(logits: logits, classes: 3, labels: [2, 2, 0, 1]), 0)
    }

    func testReportJSONKeys() throws {
        let report = EvaluationReport(name: "samples", count: 10, fidFM: 1.5, precision: 0.5, recall: 0.25,
                                      conditionalAccuracy: 0.9, manifoldReferenceCount: 10, k: 3)
        let json = String(decoding: try JSONEncoder().encode(report), as: UTF8.self)
        for key in ["fid_fm", "precision", "recall", "conditional_accuracy"] { XCTAssertTrue(json.contains(key), json) }
        XCTAssertTrue(report.summary.contains("FID-FM 1.5000"))
    }

    // MARK: reference cache

    func testReferenceStatsRoundTripKeepsDoublePrecision() throws {
        let dim = 6, count = 50
        var random = RandomStream(seed: 3, stream: 4)
        let features = random.normal(count * dim).map { $0 * 3 + 1000 }  // large mean: f32 would lose digits
        let stats = ReferenceStats(features: features, count: count, dim: dim, classifierChecksum: "abc", source: "unit")
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("loom-ref-\(UUID().uuidString).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try stats.save(path: path)
        let loaded = try ReferenceStats.load(path: path)
        XCTAssertEqual(loaded.classifierChecksum, "abc")
        XCTAssertEqual(loaded.source, "unit")
        XCTAssertEqual(loaded.features, features)
        for i in 0..<dim { XCTAssertEqual(loaded.gaussian.mean[i], stats.gaussian.mean[i], accuracy: 1e-9) }
        for i in 0..<(dim * dim) { XCTAssertEqual(loaded.gaussian.covariance[i], stats.gaussian.covariance[i], accuracy: 1e-9) }
        XCTAssertEqual(try FrechetDistance.compute(loaded.gaussian, stats.gaussian), 0, accuracy: 1e-8)
        // Subsets: seeded, sorted, of the requested size; everything when asking for more.
        let sub = stats.subset(count: 20, seed: 1)
        XCTAssertEqual(sub.count, 20)
        XCTAssertEqual(sub.features.count, 20 * dim)
        XCTAssertEqual(stats.subset(count: 500).count, count)
    }
}
