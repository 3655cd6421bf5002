import Foundation
import LoomCompiler
import LoomData
import LoomIR
import LoomRuntime

/// Mean and covariance of a feature set, in double precision.
public struct GaussianStats: Equatable, Sendable {
    public var dim: Int
    /// Number of feature vectors the statistics were computed from.
    public var count: Int
    public var mean: [Double]
    /// Row-major dim×dim, unbiased (÷ (count − 1)).
    public var covariance: [Double]

    public init(mean: [Double], covariance: [Double], count: Int) {
        precondition(covariance.count == mean.count * mean.count, "GaussianStats: covariance must be dim×dim")
        self.dim = mean.count
        self.count = count
        self.mean = mean
        self.covariance = covariance
    }

    /// Statistics of `count` rows of `dim` floats (row-major).
    public init(features: [Float], count: Int, dim: Int) {
        precondition(features.count == count * dim, "GaussianStats: \(features.count) values are not \(count)×\(dim)")
        let (mean, covariance) = features.withUnsafeBufferPointer { p -> ([Double], [Double]) in
            guard let base = p.baseAddress else {
                return ([Double](repeating: 0, count: dim), [Double](repeating: 0, count: dim * dim))
            }
            return Linalg.meanAndCovariance(base, count: count, dim: dim)
        }
        self.init(mean: mean, covariance: covariance, count: count)
    }

    public var trace: Double { (0..<dim).reduce(0) { $0 + covariance[$1 * dim + $1] } }
}

/// The Fréchet (2-Wasserstein) distance between two Gaussians:
/// `‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2(Σ₁^{½} Σ₂ Σ₁^{½})^{½})`.
///
/// Computed in double with two symmetric eigendecompositions: Σ₁ = VΛVᵀ gives the PSD root
/// S = VΛ^{½}Vᵀ (negative rounding eigenvalues clamped to 0); then `Tr((SΣ₂S)^{½})` is the sum of
/// the square roots of the (clamped) eigenvalues of the symmetric PSD matrix SΣ₂S. This equals
/// `Tr((Σ₁Σ₂)^{½})` (same spectrum) without the complex square roots a general `sqrtm` meets.
public enum FrechetDistance {
    public static func compute(_ a: GaussianStats, _ b: GaussianStats) throws -> Double {
        try compute(mean1: a.mean, covariance1: a.covariance, mean2: b.mean, covariance2: b.covariance)
    }

    public static func compute(mean1: [Double], covariance1: [Double], mean2: [Double], covariance2: [Double]) throws -> Double {
        let n = mean1.count
        guard mean2.count == n, covariance1.count == n * n, covariance2.count == n * n else {
            throw DiffusionError("Fréchet distance: dimensions differ (\(mean1.count) vs \(mean2.count))")
        }
        if n == 0 { return 0 }
        var meanTerm = 0.0
        for i in 0..<n {
            let d = mean1[i] - mean2[i]
            meanTerm += d * d
        }
        var s1 = covariance1, s2 = covariance2
        Linalg.symmetrize(&s1, n: n)
        Linalg.symmetrize(&s2, n: n)
        let root1 = try SymmetricEigen.apply(s1, n: n) { Swift.max($0, 0).squareRoot() }
        var product = Linalg.matmul(Linalg.matmul(root1, s2, m: n, k: n, n: n), root1, m: n, k: n, n: n)
        Linalg.symmetrize(&product, n: n)
        let spectrum = try SymmetricEigen.eigenvalues(product, n: n)
        let traceRoot = spectrum.reduce(0) { $0 + Swift.max($1, 0).squareRoot() }
        var traceSum = 0.0
        for i in 0..<n { traceSum += s1[i * n + i] + s2[i * n + i] }
        // Rounding can leave a tiny negative value for identical inputs.
        return Swift.max(0, meanTerm + traceSum - 2 * traceRoot)
    }
}

/// Improved precision and recall (Kynkäänniemi et al., 2019): each set's manifold is the union
/// of balls around its points with radius = distance to the point's k-th nearest neighbour in
/// the same set. Precision: fraction of generated points inside the real manifold; recall:
/// fraction of real points inside the generated manifold. Distances come from blocked SGEMMs.
public enum ManifoldMetrics {
    /// Rows × columns of one distance block (4096 × 2048 floats = 32 MiB).
    static let blockRows = 4096
    static let blockColumns = 2048

    /// Walks the squared distances between the rows of `a` and of `b` one block at a time (one SGEMM
    /// per block): `body(r0, m, c0, n, block)` sees rows r0..<r0+m of `a` against rows c0..<c0+n of
    /// `b`, row i of the block starting at `block + i * ldd` with `ldd` returned first.
    static func forEachDistanceBlock(_ a: [Float], _ aCount: Int, _ b: [Float], _ bCount: Int, dim: Int,
                                     _ body: (_ ldd: Int, _ r0: Int, _ m: Int, _ c0: Int, _ n: Int,
                                              _ block: UnsafePointer<Float>) -> Void) {
        guard aCount > 0, bCount > 0 else { return }
        let aNorms = a.withUnsafeBufferPointer { Linalg.rowSquaredNorms($0.baseAddress!, count: aCount, dim: dim) }
        let bNorms = b.withUnsafeBufferPointer { Linalg.rowSquaredNorms($0.baseAddress!, count: bCount, dim: dim) }
        let rows = min(blockRows, aCount), columns = min(blockColumns, bCount)
        var block = [Float](repeating: 0, count: rows * columns)
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                aNorms.withUnsafeBufferPointer { na in
                    bNorms.withUnsafeBufferPointer { nb in
                        block.withUnsafeMutableBufferPointer { d in
                            var r0 = 0
                            while r0 < aCount {
                                let m = min(rows, aCount - r0)
                                var c0 = 0
                                while c0 < bCount {
                                    let n = min(columns, bCount - c0)
                                    Linalg.squaredDistances(a: pa.baseAddress! + r0 * dim, aNorms: na.baseAddress! + r0, m: m,
                                                            b: pb.baseAddress! + c0 * dim, bNorms: nb.baseAddress! + c0, n: n,
                                                            dim: dim, into: d.baseAddress!, ldd: columns)
                                    body(columns, r0, m, c0, n, UnsafePointer(d.baseAddress!))
                                    c0 += n
                                }
                                r0 += m
                            }
                        }
                    }
                }
            }
        }
    }

    /// Squared distance of each row to its k-th nearest other row (self excluded) of the same set;
    /// +∞ when the set has no k other rows.
    public static func kNNSquaredRadii(_ features: [Float], count: Int, dim: Int, k: Int) -> [Float] {
        precondition(features.count == count * dim && k >= 1, "kNNSquaredRadii: bad sizes")
        var radii = [Float](repeating: .infinity, count: count)
        guard count > k else { return radii }
        // The k smallest distances of each row so far, ascending (k ≤ a few: insertion).
        var best = [Float](repeating: .infinity, count: count * k)
        best.withUnsafeMutableBufferPointer { top in
            forEachDistanceBlock(features, count, features, count, dim: dim) { ldd, r0, m, c0, n, block in
                for i in 0..<m {
                    let row = block + i * ldd
                    let t = top.baseAddress! + (r0 + i) * k
                    let selfColumn = r0 + i - c0
                    var worst = t[k - 1]
                    for j in 0..<n where row[j] < worst && j != selfColumn {
                        // Insert row[j] into the sorted top-k.
                        var p = k - 1
                        let v = row[j]
                        while p > 0 && t[p - 1] > v {
                            t[p] = t[p - 1]
                            p -= 1
                        }
                        t[p] = v
                        worst = t[k - 1]
                    }
                }
            }
        }
        for i in 0..<count { radii[i] = best[i * k + k - 1] }
        return radii
    }

    /// For each query row: is it within the ball of some manifold row (‖q − m_j‖² ≤ radius_j²)?
    /// Returns the fraction of query rows that are.
    public static func coverageFraction(queries: [Float], queryCount: Int, manifold: [Float], manifoldCount: Int,
                                        squaredRadii: [Float], dim: Int) -> Double {
        precondition(queries.count == queryCount * dim && manifold.count == manifoldCount * dim
                     && squaredRadii.count == manifoldCount, "coverageFraction: bad sizes")
        guard queryCount > 0, manifoldCount > 0 else { return 0 }
        var inside = [Bool](repeating: false, count: queryCount)
        squaredRadii.withUnsafeBufferPointer { rad in
            inside.withUnsafeMutableBufferPointer { hit in
                forEachDistanceBlock(queries, queryCount, manifold, manifoldCount, dim: dim) { ldd, r0, m, c0, n, block in
                    let r = rad.baseAddress! + c0
                    for i in 0..<m where !hit[r0 + i] {
                        let row = block + i * ldd
                        var j = 0
                        while j < n {
                            if row[j] <= r[j] {
                                hit[r0 + i] = true
                                break
                            }
                            j += 1
                        }
                    }
                }
            }
        }
        return Double(inside.lazy.filter { $0 }.count) / Double(queryCount)
    }

    /// Precision and recall of `generated` against `real` (rows of `dim` floats) with k-NN radii.
    public static func precisionRecall(real: [Float], realCount: Int, generated: [Float], generatedCount: Int,
                                       dim: Int, k: Int = 3) -> (precision: Double, recall: Double) {
        let realRadii = kNNSquaredRadii(real, count: realCount, dim: dim, k: k)
        let generatedRadii = kNNSquaredRadii(generated, count: generatedCount, dim: dim, k: k)
        let precision = coverageFraction(queries: generated, queryCount: generatedCount, manifold: real,
                                         manifoldCount: realCount, squaredRadii: realRadii, dim: dim)
        let recall = coverageFraction(queries: real, queryCount: realCount, manifold: generated,
                                      manifoldCount: generatedCount, squaredRadii: generatedRadii, dim: dim)
        return (precision, recall)
    }
}

/// How often the classifier assigns the class a sample was generated for.
public enum ConditionalAccuracy {
    /// Row-wise argmax of `logits` [N, classes].
    public static func argmax(_ logits: [Float], classes: Int) -> [Int] {
        precondition(classes > 0 && logits.count % classes == 0, "argmax: \(logits.count) logits are not rows of \(classes)")
        let n = logits.count / classes
        var out = [Int](repeating: 0, count: n)
        logits.withUnsafeBufferPointer { l in
            for i in 0..<n {
                let row = l.baseAddress! + i * classes
                var best = 0
                for c in 1..<max(classes, 1) where row[c] > row[best] { best = c }
                out[i] = best
            }
        }
        return out
    }

    /// Fraction of rows whose argmax equals the requested label.
    public static func compute(logits: [Float], classes: Int, labels: [Int64]) -> Double {
        let predicted = argmax(logits, classes: classes)
        precondition(predicted.count == labels.count, "conditional accuracy: \(predicted.count) predictions for \(labels.count) labels")
        guard !labels.isEmpty else { return 0 }
        let hits = zip(predicted, labels).reduce(0) { $0 + (Int64($1.0) == $1.1 ? 1 : 0) }
        return Double(hits) / Double(labels.count)
    }
}

/// The metrics of one image set against the reference statistics.
public struct EvaluationReport: Codable, Equatable, Sendable {
    /// What was scored (`samples`, `real test`).
    public var name: String
    /// Number of images scored.
    public var count: Int
    /// Fréchet distance in the classifier's feature space against the reference statistics.
    public var fidFM: Double
    public var precision: Double
    public var recall: Double
    /// Fraction of images the classifier assigns to their requested (or true) class.
    public var conditionalAccuracy: Double
    /// Reference features used for precision/recall (a fixed random subset of the reference set).
    public var manifoldReferenceCount: Int
    public var k: Int
    /// Standard error of `fidFM` from a bootstrap over the samples (resampled with replacement);
    /// nil where not computed.
    public var fidStandardError: Double?

    enum CodingKeys: String, CodingKey {
        case name, count
        case fidFM = "fid_fm"
        case fidStandardError = "fid_standard_error"
        case precision, recall
        case conditionalAccuracy = "conditional_accuracy"
        case manifoldReferenceCount = "manifold_reference_count"
        case k
    }

    /// One line: `FID-FM 1.234  precision 0.812  recall 0.754  conditional accuracy 0.931`.
    public var summary: String {
        String(format: "FID-FM %.4f  precision %.4f  recall %.4f  conditional accuracy %.4f",
               fidFM, precision, recall, conditionalAccuracy)
    }
}

/// Scores image sets with a feature classifier against reference statistics.
public enum SampleEvaluator {
    /// FID-FM, precision/recall (k-NN, `k`) and conditional accuracy of `images` [N, C, S, S]
    /// generated for `labels`. Precision/recall compare against `manifoldReference` reference
    /// features (default: as many as there are images, the paper's equal-size protocol), a fixed
    /// seeded subset of the reference set.
    public static func evaluate(name: String = "samples", images: HostTensor, labels: [Int64],
                                extractor: FeatureExtractor, reference: ReferenceStats,
                                manifoldReference: Int? = nil, k: Int = 3, clamp: Bool = true,
                                seed: UInt64 = 0, bootstrap: Int = 0) throws -> EvaluationReport {
        guard images.shape.count == 4, images.shape[0] == labels.count else {
            throw DiffusionError("\(name): \(images.shape.first ?? 0) images but \(labels.count) labels")
        }
        guard reference.dim == extractor.config.featureDim else {
            throw DiffusionError("reference statistics have \(reference.dim)-d features, the classifier \(extractor.config.featureDim)-d")
        }
        let n = labels.count
        guard n >= 2, n > k else {
            throw DiffusionError("\(name): need more than max(1, k = \(k)) images for the covariance and k-NN radii, got \(n)")
        }
        if let bad = labels.first(where: { $0 < 0 || $0 >= Int64(extractor.config.numClasses) }) {
            throw DiffusionError("\(name): label \(bad) is outside 0..<\(extractor.config.numClasses)")
        }
        let out = try extractor.run(images, clamp: clamp)
        let dim = extractor.config.featureDim
        let stats = GaussianStats(features: out.features, count: n, dim: dim)
        let fid = try FrechetDistance.compute(stats, reference.gaussian)
        let subset = reference.subset(count: manifoldReference ?? n, seed: seed)
        let pr = ManifoldMetrics.precisionRecall(real: subset.features, realCount: subset.count,
                                                 generated: out.features, generatedCount: n, dim: dim, k: k)
        let accuracy = ConditionalAccuracy.compute(logits: out.logits, classes: extractor.config.numClasses, labels: labels)
        var report = EvaluationReport(name: name, count: n, fidFM: fid, precision: pr.precision, recall: pr.recall,
                                      conditionalAccuracy: accuracy, manifoldReferenceCount: subset.count, k: k)
        if bootstrap > 1 {
            report.fidStandardError = try fidStandardError(out.features, count: n, dim: dim, reference: reference.gaussian,
                                                           resamples: bootstrap, seed: seed)
        }
        return report
    }

    /// Sample standard deviation of the FID over `resamples` bootstrap resamples of the feature
    /// rows (with replacement, from a fixed stream).
    static func fidStandardError(_ features: [Float], count n: Int, dim: Int, reference: GaussianStats,
                                 resamples: Int, seed: UInt64) throws -> Double {
        var stream = RandomStream(seed: seed, stream: RandomStream.streamID("loom.fid.bootstrap"))
        var values: [Double] = []
        var picked = [Float](repeating: 0, count: n * dim)
        for _ in 0..<resamples {
            let draws = stream.uniform(n)
            for (row, u) in draws.enumerated() {
                let source = min(n - 1, Int(u * Float(n)))
                picked.replaceSubrange((row * dim)..<((row + 1) * dim), with: features[(source * dim)..<((source + 1) * dim)])
            }
            values.append(try FrechetDistance.compute(GaussianStats(features: picked, count: n, dim: dim), reference))
        }
        let mean = values.reduce(0, +) / Double(values.count)
        return (values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(values.count - 1)).squareRoot()
    }
}
