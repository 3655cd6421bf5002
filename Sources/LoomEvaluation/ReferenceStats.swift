import Foundation
import LoomCompiler
import LoomData
import LoomIR
import LoomRuntime

/// Classifier features of a reference image set (the Fashion-MNIST training split) and their
/// Gaussian statistics, cached in a safetensors file keyed by the classifier weights' checksum.
///
/// Cache layout: `features` f32 [N, F]; `mean.hi`/`mean.lo` f32 [F] and `covariance.hi`/
/// `covariance.lo` f32 [F, F] — each double split as `hi = Float(x)`, `lo = Float(x − hi)`, so the
/// statistics survive the f32-only format with ~48-bit precision; metadata `format`,
/// `classifier_checksum`, `source`, `count`, `dim`.
public struct ReferenceStats: Sendable {
    public static let formatTag = "loom.reference-stats.v1"

    /// Row-major [count, dim].
    public var features: [Float]
    public var count: Int
    public var dim: Int
    public var gaussian: GaussianStats
    /// `ClassifierWeights.checksum` of the classifier that produced the features.
    public var classifierChecksum: String
    /// Description of the image set, e.g. `fashion-mnist train 60000`.
    public var source: String

    public init(features: [Float], count: Int, dim: Int, classifierChecksum: String, source: String,
                gaussian: GaussianStats? = nil) {
        precondition(features.count == count * dim, "ReferenceStats: \(features.count) values are not \(count)×\(dim)")
        self.features = features
        self.count = count
        self.dim = dim
        self.gaussian = gaussian ?? GaussianStats(features: features, count: count, dim: dim)
        self.classifierChecksum = classifierChecksum
        self.source = source
    }

    /// Features and statistics of `images` under `extractor`'s classifier.
    public static func compute(extractor: FeatureExtractor, images: HostTensor, source: String) throws -> ReferenceStats {
        let out = try extractor.run(images)
        return ReferenceStats(features: out.features, count: out.count, dim: extractor.config.featureDim,
                              classifierChecksum: extractor.weights.checksum, source: source)
    }

    /// `count` reference rows chosen by a seeded permutation (all rows, in order, when
    /// `count >= self.count`): the real manifold for precision/recall.
    public func subset(count wanted: Int, seed: UInt64 = 0) -> (features: [Float], count: Int) {
        guard wanted < count else { return (features, count) }
        let chosen = BatchSampler.permutation(count: count, seed: seed, epoch: 0).prefix(max(wanted, 0)).sorted()
        var out = [Float](repeating: 0, count: chosen.count * dim)
        features.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for (row, index) in chosen.enumerated() {
                    (dst.baseAddress! + row * dim).update(from: src.baseAddress! + index * dim, count: dim)
                }
            }
        }
        return (out, chosen.count)
    }

    // MARK: cache file

    static func split(_ values: [Double]) -> (hi: [Float], lo: [Float]) {
        let hi = values.map { Float($0) }
        let lo = zip(values, hi).map { Float($0 - Double($1)) }
        return (hi, lo)
    }

    static func join(_ hi: [Float], _ lo: [Float]) -> [Double] {
        zip(hi, lo).map { Double($0) + Double($1) }
    }

    public func save(path: String) throws {
        let mean = Self.split(gaussian.mean), covariance = Self.split(gaussian.covariance)
        let tensors: [(String, HostTensor)] = [
            ("features", HostTensor(shape: [count, dim], floats: features)),
            ("mean.hi", HostTensor(shape: [dim], floats: mean.hi)),
            ("mean.lo", HostTensor(shape: [dim], floats: mean.lo)),
            ("covariance.hi", HostTensor(shape: [dim, dim], floats: covariance.hi)),
            ("covariance.lo", HostTensor(shape: [dim, dim], floats: covariance.lo)),
        ]
        let metadata = ["format": Self.formatTag, "classifier_checksum": classifierChecksum, "source": source,
                        "count": String(count), "dim": String(dim)]
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent()
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try SafeTensors.write(tensors, metadata: metadata, to: path)
    }

    public static func load(path: String) throws -> ReferenceStats {
        let file = try SafeTensors.read(path: path)
        guard file.metadata["format"] == formatTag, let checksum = file.metadata["classifier_checksum"],
              let count = file.metadata["count"].flatMap({ Int($0) }), let dim = file.metadata["dim"].flatMap({ Int($0) }),
              count >= 0, dim > 0 else {
            throw DiffusionError("'\(path)' is not a Loom reference-statistics file (\(formatTag))")
        }
        let features = try file.tensor("features", expected: TensorType(.f32, [count, dim])).floats
        let meanHi = try file.tensor("mean.hi", expected: TensorType(.f32, [dim])).floats
        let meanLo = try file.tensor("mean.lo", expected: TensorType(.f32, [dim])).floats
        let covHi = try file.tensor("covariance.hi", expected: TensorType(.f32, [dim, dim])).floats
        let covLo = try file.tensor("covariance.lo", expected: TensorType(.f32, [dim, dim])).floats
        let gaussian = GaussianStats(mean: join(meanHi, meanLo), covariance: join(covHi, covLo), count: count)
        return ReferenceStats(features: features, count: count, dim: dim, classifierChecksum: checksum,
                              source: file.metadata["source"] ?? "", gaussian: gaussian)
    }

    /// The default cache path for a classifier file: `<classifier stem>.reference.safetensors`.
    public static func defaultCachePath(classifierPath: String) -> String {
        let stem = classifierPath.hasSuffix(".safetensors") ? String(classifierPath.dropLast(".safetensors".count)) : classifierPath
        return stem + ".reference.safetensors"
    }

    /// Loads the cache at `cachePath` if it was made by this classifier (same checksum) from
    /// `source`; otherwise computes the statistics from `images()` and writes the cache (when a
    /// path is given). A file at `cachePath` that is not such a cache is never overwritten (an
    /// error). Returns the statistics and whether they came from the cache.
    public static func loadOrCompute(cachePath: String?, extractor: FeatureExtractor, source: String,
                                     images: () throws -> HostTensor,
                                     log: ((String) -> Void)? = nil) throws -> (stats: ReferenceStats, cached: Bool) {
        let checksum = extractor.weights.checksum
        if let cachePath, FileManager.default.fileExists(atPath: cachePath) {
            do {
                let stats = try load(path: cachePath)
                if stats.classifierChecksum == checksum && stats.source == source && stats.dim == extractor.config.featureDim {
                    log?("reference statistics: \(cachePath) (cached, \(stats.count) images, classifier \(checksum))")
                    return (stats, true)
                }
                log?("reference cache \(cachePath) was made by classifier \(stats.classifierChecksum) from '\(stats.source)'; "
                     + "recomputing for \(checksum) from '\(source)'")
            } catch {
                // Only a reference-statistics file is ever written over: anything else at that path
                // (a checkpoint, a golden file) is the user's.
                throw DiffusionError("\(cachePath) exists and is not a Loom reference-statistics cache (\(error)); refusing to overwrite it: choose another --reference-cache")
            }
        }
        let started = Date()
        let stats = try compute(extractor: extractor, images: try images(), source: source)
        log?(String(format: "reference statistics: %d images from %@ in %.1f s", stats.count, source,
                    Date().timeIntervalSince(started)))
        if let cachePath {
            do {
                try stats.save(path: cachePath)
                log?("wrote \(cachePath)")
            } catch {
                log?("warning: could not write the reference cache \(cachePath): \(error)")
            }
        }
        return (stats, false)
    }
}
