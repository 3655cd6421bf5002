import ArgumentParser
import LoomBenchmarking
import LoomData
import LoomDiffusion
import LoomEvaluation
import LoomExperiments
import LoomSampling
import LoomTraining

/// Range checks for numeric flags, run at parse time (`validate()`): a bad value is a usage error
/// that names the flag and the allowed range.
enum FlagCheck {
    /// Counts (steps, batches, images) may not exceed this: far beyond any run, far below overflow.
    static let maxCount = 1 << 31

    static func count(_ value: Int, _ flag: String, min: Int = 1, max: Int = maxCount) throws {
        guard (min...max).contains(value) else {
            throw ValidationError("\(flag) \(value): expected an integer in \(min)…\(max)")
        }
    }

    static func real<T: BinaryFloatingPoint>(_ value: T, _ flag: String, _ range: ClosedRange<Double>) throws {
        guard value.isFinite, range.contains(Double(value)) else {
            throw ValidationError("\(flag) \(value): expected a finite number in [\(range.lowerBound), \(range.upperBound)]")
        }
    }
}
