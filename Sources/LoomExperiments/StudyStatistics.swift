import Foundation
import LoomRuntime

/// The statistics of a study run with several seeds: mean and sample standard deviation per row, and
/// paired differences between rows with a percentile bootstrap interval over seeds.
public enum StudyStatistics {
    /// Mean and sample standard deviation (0 for one value).
    public static func meanAndDeviation(_ values: [Double]) -> (mean: Double, sd: Double) {
        guard !values.isEmpty else { return (.nan, .nan) }
        let mean = values.reduce(0, +) / Double(values.count)
        guard values.count > 1 else { return (mean, 0) }
        let variance = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(values.count - 1)
        return (mean, variance.squareRoot())
    }

    /// A paired comparison: the mean of `a − b` over the seeds both have, and its 95% percentile
    /// bootstrap interval (seeds resampled with replacement, `resamples` times, from a fixed stream so
    /// that the interval is reproducible).
    public struct PairedDifference: Codable, Equatable, Sendable {
        public var mean: Double
        public var low: Double
        public var high: Double
        public var pairs: Int

        /// `a` lower (better, for FID) when the whole interval is below 0, `b` when above, else
        /// undecided.
        public var verdict: String {
            if pairs < 2 { return "undecided (one seed)" }
            if high < 0 { return "lower" }
            if low > 0 { return "higher" }
            return "undecided"
        }
    }

    public static func pairedDifference(_ a: [UInt64: Double], _ b: [UInt64: Double], resamples: Int = 10_000) -> PairedDifference? {
        let seeds = Set(a.keys).intersection(b.keys).sorted()
        guard !seeds.isEmpty else { return nil }
        let differences = seeds.map { a[$0]! - b[$0]! }
        let mean = differences.reduce(0, +) / Double(differences.count)
        guard differences.count > 1 else { return PairedDifference(mean: mean, low: mean, high: mean, pairs: 1) }
        var stream = RandomStream(seed: 2512, stream: RandomStream.streamID("loom.study.bootstrap"))
        let draws = stream.uniform(resamples * differences.count)
        var means: [Double] = []
        means.reserveCapacity(resamples)
        for r in 0..<resamples {
            var sum = 0.0
            for i in 0..<differences.count {
                let pick = min(differences.count - 1, Int(draws[r * differences.count + i] * Float(differences.count)))
                sum += differences[pick]
            }
            means.append(sum / Double(differences.count))
        }
        means.sort()
        let low = means[Int(0.025 * Double(resamples - 1))], high = means[Int((0.975 * Double(resamples - 1)).rounded(.up))]
        return PairedDifference(mean: mean, low: low, high: high, pairs: differences.count)
    }
}
