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

    /// A paired comparison: the mean of `a − b` over the seeds both have, its 95% percentile
    /// bootstrap interval (seeds resampled with replacement, `resamples` times, from a fixed stream so
    /// that the interval is reproducible) and its 95% Student-t interval.
    ///
    /// With a handful of seeds the bootstrap interval is too narrow to decide alone: over n seeds it
    /// cannot reach beyond the smallest and largest difference, so with three seeds it excludes 0
    /// exactly when all three differences share a sign, which noise alone does one time in four. The
    /// t interval (mean ± t₀.₉₇₅,ₙ₋₁ · sd/√n) accounts for the few seeds; a verdict needs both.
    public struct PairedDifference: Codable, Equatable, Sendable {
        public var mean: Double
        public var low: Double
        public var high: Double
        public var tLow: Double
        public var tHigh: Double
        public var pairs: Int

        /// What the intervals decide about `a` against `b`.
        public enum Direction: String, Sendable {
            /// Both intervals lie below 0: `a` is lower (better, for FID).
            case lower
            /// Both intervals lie above 0.
            case higher
            /// At least one interval contains 0.
            case undecided
            /// One pair only: no interval to decide with.
            case oneSeed = "undecided (one seed)"

            var isDecided: Bool { self == .lower || self == .higher }
        }

        /// `a` lower when both intervals lie below 0, higher when both lie above, else undecided.
        public var direction: Direction {
            if pairs < 2 { return .oneSeed }
            if high < 0 && tHigh < 0 { return .lower }
            if low > 0 && tLow > 0 { return .higher }
            return .undecided
        }

        /// `direction` as the report writes it.
        public var verdict: String { direction.rawValue }
    }

    /// The verdict on a claim from its comparison's direction in each feature space:
    /// "holds" when every space decides in the expected direction, "does not hold" when every space
    /// decides the other way, else "undecided" ("not run" without results). A claim of no difference
    /// (`neither`) holds while no space decides, and does not hold once one does. Without an
    /// expectation the verdict says what the spaces agree on ("a lower in both spaces").
    public static func claimVerdict(_ spaces: [PairedDifference.Direction],
                                    expect: ExperimentConfig.Comparison.Expectation?) -> String {
        guard let first = spaces.first else { return "not run" }
        if spaces.contains(.oneSeed) { return PairedDifference.Direction.oneSeed.rawValue }
        let decided = first.isDecided && spaces.allSatisfy({ $0 == first }) ? first : nil
        let every = spaces.count == 1 ? "its space" : "both spaces"
        switch expect {
        case .lower?, .higher?:
            guard let decided else { return "undecided" }
            return decided.rawValue == expect?.rawValue ? "holds" : "does not hold (a \(decided.rawValue) in \(every))"
        case .neither?:
            return spaces.allSatisfy { $0 == .undecided } ? "holds (no difference found)" : "does not hold"
        case nil:
            return decided.map { "a \($0.rawValue) in \(every)" } ?? "undecided"
        }
    }

    /// The 0.975 quantile of Student's t with `df` degrees of freedom (exact to 3 decimals up to 30,
    /// then the Cornish–Fisher expansion around the normal quantile).
    public static func tQuantile975(df: Int) -> Double {
        let table: [Double] = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
                               2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
                               2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]
        precondition(df >= 1, "t quantile needs at least one degree of freedom")
        if df <= table.count { return table[df - 1] }
        let z = 1.959964, v = Double(df)
        return z + (z * z * z + z) / (4 * v) + (5 * pow(z, 5) + 16 * z * z * z + 3 * z) / (96 * v * v)
    }

    public static func pairedDifference(_ a: [UInt64: Double], _ b: [UInt64: Double], resamples: Int = 10_000) -> PairedDifference? {
        let seeds = Set(a.keys).intersection(b.keys).sorted()
        guard !seeds.isEmpty else { return nil }
        let differences = seeds.map { a[$0]! - b[$0]! }
        let mean = differences.reduce(0, +) / Double(differences.count)
        guard differences.count > 1 else {
            return PairedDifference(mean: mean, low: mean, high: mean, tLow: mean, tHigh: mean, pairs: 1)
        }
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
        let sd = meanAndDeviation(differences).sd
        let halfWidth = tQuantile975(df: differences.count - 1) * sd / Double(differences.count).squareRoot()
        return PairedDifference(mean: mean, low: low, high: high, tLow: mean - halfWidth, tHigh: mean + halfWidth,
                                pairs: differences.count)
    }
}
