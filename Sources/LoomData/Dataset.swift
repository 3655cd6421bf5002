import Foundation
import LoomIR
import LoomRuntime

/// A labelled image (or latent) set held in memory.
///
/// `images` is an f32 tensor [N, C, H, W]; pixel data sets are normalised to [-1, 1], latent
/// sets (see `LatentFolder`) hold normalised latents. `labels[i]` is the class of image i, in
/// `0..<numClasses`. Loaders: `fashionMNIST(root:split:padTo:limit:)`,
/// `idx(imagesPath:labelsPath:numClasses:padTo:limit:)`, `LatentFolder.load(path:numClasses:)`.
public struct Dataset: Sendable {
    /// f32 [N, C, H, W].
    public private(set) var images: HostTensor
    /// N class labels in `0..<numClasses`.
    public private(set) var labels: [Int64]
    /// Number of classes.
    public private(set) var numClasses: Int
    /// Where the data came from (a path or description), for messages.
    public var source: String

    /// Creates a data set, checking that `images` is f32 [N, C, H, W], that there are N labels
    /// and that every label lies in `0..<numClasses`.
    public init(images: HostTensor, labels: [Int64], numClasses: Int, source: String = "<memory>") throws {
        guard images.dtype == .f32, images.shape.count == 4 else {
            throw DiffusionError("data set '\(source)': images must be f32 [N, C, H, W], got "
                                 + "\(images.dtype.rawValue)\(describeShape(images.shape))")
        }
        guard images.shape[0] == labels.count else {
            throw DiffusionError("data set '\(source)': \(images.shape[0]) images but \(labels.count) labels")
        }
        guard numClasses >= 1 else {
            throw DiffusionError("data set '\(source)': numClasses must be at least 1, got \(numClasses)")
        }
        if let index = labels.firstIndex(where: { $0 < 0 || $0 >= Int64(numClasses) }) {
            throw DiffusionError("data set '\(source)': label \(labels[index]) of sample \(index) is outside 0..<\(numClasses)")
        }
        self.images = images
        self.labels = labels
        self.numClasses = numClasses
        self.source = source
    }

    /// Number of samples N.
    public var count: Int { images.shape[0] }
    /// Channels C.
    public var channels: Int { images.shape[1] }
    /// Height H.
    public var height: Int { images.shape[2] }
    /// Width W.
    public var width: Int { images.shape[3] }
    /// The shape of one sample, [C, H, W].
    public var sampleShape: [Int] { Array(images.shape.dropFirst()) }
    /// Floats per sample, C·H·W.
    public var sampleSize: Int { channels * height * width }

    /// Gathers the samples at `indices` (in that order; repeats allowed) into images f32
    /// [B, C, H, W] and labels i64 [B], copying one whole row per sample. Indices must lie in
    /// `0..<count` (a programming error otherwise).
    public func batch(indices: [Int]) -> (images: HostTensor, labels: HostTensor) {
        let n = count
        let row = sampleSize
        for index in indices {
            precondition(index >= 0 && index < n, "Dataset.batch: index \(index) is outside 0..<\(n) of '\(source)'")
        }
        let total = indices.count * row
        let floats = [Float](unsafeUninitializedCapacity: total) { out, initialized in
            if total > 0 {
                images.floats.withUnsafeBufferPointer { src in
                    let from = src.baseAddress!
                    let to = out.baseAddress!
                    for (k, index) in indices.enumerated() {
                        (to + k * row).initialize(from: from + index * row, count: row)
                    }
                }
            }
            initialized = total
        }
        let batchLabels = indices.map { labels[$0] }
        return (HostTensor(shape: [indices.count] + sampleShape, floats: floats),
                HostTensor(shape: [indices.count], ints: batchLabels))
    }

    /// The first `limit` samples (all of them when `limit >= count`).
    public func prefix(_ limit: Int) -> Dataset {
        let kept = Swift.max(0, Swift.min(limit, count))
        guard kept < count else { return self }
        var copy = self
        copy.images = HostTensor(shape: [kept] + sampleShape, floats: Array(images.floats[0..<(kept * sampleSize)]))
        copy.labels = Array(labels[0..<kept])
        return copy
    }

    /// Per-channel mean and (population) standard deviation over all samples and pixels.
    public func channelStatistics() -> (mean: [Float], std: [Float]) {
        let plane = height * width
        var sums = [Double](repeating: 0, count: channels)
        var squares = [Double](repeating: 0, count: channels)
        images.floats.withUnsafeBufferPointer { src in
            for n in 0..<count {
                for c in 0..<channels {
                    var sum = 0.0, square = 0.0
                    let base = src.baseAddress! + (n * channels + c) * plane
                    for i in 0..<plane {
                        let value = Double(base[i])
                        sum += value
                        square += value * value
                    }
                    sums[c] += sum
                    squares[c] += square
                }
            }
        }
        let samples = Double(Swift.max(1, count * plane))
        let mean = sums.map { $0 / samples }
        let std = zip(squares, mean).map { (Swift.max(0, $0 / samples - $1 * $1)).squareRoot() }
        return (mean.map(Float.init), std.map(Float.init))
    }
}
